from tests.harness import TgUser


async def test_start_shows_greeting_and_menu(fake, patient: TgUser):
    shown = await patient.send("/start")
    assert len(shown) == 1
    assert "Hello, Anna!" in shown[0].text
    assert "Uses of Mesotherapy" in patient.labels(shown[0])
    assert fake.calls_to("setMyCommands")
