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


def test_a_token_in_a_chained_cause_is_redacted_and_the_traceback_kept(capsys):
    """The transport raises a clean TimedOut from aiohttp's error, whose text quotes the URL
    (with the token): the formatter prints that cause too."""
    from telegram.error import TimedOut

    setup_logging("INFO", secrets=["extra-secret-value"])
    try:
        try:
            raise TimeoutError(f"Connection timeout to host https://api.telegram.org/bot{TOKEN}/getMe"
                               " (extra-secret-value)")
        except TimeoutError as err:
            raise TimedOut("Timed out (ConnectionTimeoutError)") from err
    except TimedOut:
        logging.getLogger("telegram.ext.Updater").warning("start failed", exc_info=True)
    err = capsys.readouterr().err
    assert TOKEN not in err and "extra-secret-value" not in err
    assert "Connection timeout to host https://api.telegram.org/bot<redacted>/getMe" in err
    assert "Traceback" in err and "TimedOut: Timed out (ConnectionTimeoutError)" in err


def test_filter_leaves_ordinary_records_alone():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "patient %s pressed %s", (12, "n:abc"), None)
    assert RedactTokenFilter().filter(record)
    assert record.getMessage() == "patient 12 pressed n:abc"
