import logging

from bot.logging_setup import RedactTokenFilter, setup_logging

TOKEN = "123456789:AAH-secret-token-abcdefghijklmnopqrst"


def test_token_is_redacted_from_messages_arguments_and_exceptions(capsys):
    setup_logging("DEBUG", secrets=["extra-secret-value"])
    log = logging.getLogger("bot.test")
    log.info("calling https://api.telegram.org/bot%s/getMe", TOKEN)
    log.info("configured with extra-secret-value")
    try:
        raise RuntimeError(f"bad url /bot{TOKEN}/x")
    except RuntimeError:
        log.exception("request failed")
    err = capsys.readouterr().err
    assert TOKEN not in err and "extra-secret-value" not in err
    assert err.count("<redacted>") >= 3
    assert logging.getLogger("httpx").level == logging.WARNING


def test_filter_leaves_ordinary_records_alone():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "patient %s pressed %s", (12, "n:abc"), None)
    assert RedactTokenFilter().filter(record)
    assert record.getMessage() == "patient 12 pressed n:abc"
