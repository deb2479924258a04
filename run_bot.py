#!/usr/bin/env python3
"""Command line: run the bot, try it in a terminal sandbox, migrate, check content.

  python run_bot.py                 run (long polling); needs BOT_TOKEN
  python run_bot.py run --webhook   run behind a load balancer; also needs WEBHOOK_URL and
                                    WEBHOOK_SECRET_TOKEN (GET /healthz for the balancer)
  python run_bot.py sandbox         chat with the bot in this terminal, no token needed
  python run_bot.py migrate         apply database migrations
  python run_bot.py check-content   validate content/ and exit
  python run_bot.py import-appointments FILE
                                    book appointments from a CSV file (see --help)
  python run_bot.py new-key         print a new ENCRYPTION_KEYS key
  python run_bot.py rotate-keys     re-encrypt stored answers and questions under the first key

Health answers are encrypted at rest with ENCRYPTION_KEYS (comma-separated Fernet keys; the first
encrypts, all decrypt). `run` refuses to start without it. The sandbox, if it is unset, creates
a key file next to its database (sandbox.db.key) and reuses it; delete both to start afresh.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot.config import ConfigError, load_settings
from bot.content import CONTACT_MISSING, ContentError, load_content
from bot.logging_setup import setup_logging


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


def _startup_problem(exc: Exception) -> str | None:
    """One line for what stops the bot from starting and is the operator's to fix (the
    database, Telegram, the webhook's port), instead of a traceback; None for anything else."""
    import errno

    from telegram.error import BadRequest, NetworkError, TelegramError

    from bot.db.errors import is_db_unavailable
    from bot.logging_setup import redact_token

    if isinstance(exc, BadRequest) and "webhook" in exc.message.lower():
        return (f"Telegram refused the webhook ({redact_token(exc.message)}): check WEBHOOK_URL "
                "(an https URL on port 443, 80, 88 or 8443)")
    if isinstance(exc, NetworkError):  # before the database: its cause may be a TimeoutError
        return (f"Telegram's Bot API could not be reached ({redact_token(exc.message)}): check "
                "the network, a proxy (HTTPS_PROXY) and TELEGRAM_API_BASE_URL if set")
    if isinstance(exc, TelegramError):
        return None
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (f"Cannot listen for the webhook ({exc.strerror}): another program uses "
                "WEBHOOK_LISTEN:WEBHOOK_PORT; stop it or choose another port")
    if is_db_unavailable(exc):
        return (f"The database cannot be used ({type(exc).__name__}: "
                f"{redact_token(str(exc)).splitlines()[0] if str(exc) else 'no detail'}): check "
                "DATABASE_URL, that the server runs (PostgreSQL) or that the folder exists "
                "(SQLite)")
    return None


def cmd_run(args: argparse.Namespace) -> int:
    from telegram import Update

    from bot.app import build_application

    settings = load_settings()
    token = settings.token()
    webhook = getattr(args, "webhook", False)
    if webhook:
        settings.require_webhook()
    elif settings.webhook_url:
        # Polling starts by deleting the webhook: one instance started without --webhook
        # would quietly cut off every instance that serves it.
        return _fail("WEBHOOK_URL is set: start with `run --webhook`, or unset WEBHOOK_URL to "
                     "poll (polling turns the webhook off for every instance)")
    settings.encryption_key_list()  # no key, no start: health answers are never stored in clear
    secrets = [token]
    if settings.webhook_secret_token is not None:
        secrets.append(settings.webhook_secret_token.get_secret_value())
    setup_logging(settings.log_level, secrets=secrets)
    application = build_application(settings)
    if webhook:
        from bot.webhook import run_webhook

        asyncio.run(run_webhook(application, settings, application.bot_data["services"].db))
        return 0
    application.run_polling(allowed_updates=Update.ALL_TYPES, drop_pending_updates=False)
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from bot.app import build_application
    from bot.sandbox import SANDBOX_TOKEN, SandboxRequest, run_sandbox

    overrides: dict[str, object] = {"rate_limiter": False}
    if args.database_url:
        overrides["database_url"] = args.database_url
    settings = load_settings(**overrides)
    if settings.encryption_keys is None:
        settings = load_settings(**overrides, encryption_keys=_sandbox_key(settings.database_url))
    setup_logging("WARNING")
    request = SandboxRequest()
    application = build_application(settings, request=request, token=SANDBOX_TOKEN)
    asyncio.run(run_sandbox(application, request))
    return 0


def _sandbox_key(database_url: str) -> str:
    """The sandbox's own key, kept in a file next to its database (owner-only permissions)."""
    import os
    from pathlib import Path

    from bot.crypto import new_key

    db_file = database_url.split(":///", 1)[-1] if database_url.startswith("sqlite") else "sandbox"
    path = Path(f"{db_file}.key")
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    key = new_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    print(f"(sandbox: ENCRYPTION_KEYS is not set; created a sandbox-only key in {path})")
    return key


def cmd_new_key(args: argparse.Namespace) -> int:
    from bot.crypto import new_key

    print(new_key())
    return 0


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    from bot.app import build_services

    settings = load_settings()
    settings.encryption_key_list()
    setup_logging(settings.log_level)
    svc = build_services(settings)

    from bot.rotation import rotate_all

    async def _go() -> dict[str, int]:
        try:
            return await rotate_all(svc)
        finally:
            await svc.db.dispose()

    from bot.rotation import LEFT, UNREADABLE

    counts = asyncio.run(_go())
    left, unreadable = counts.pop(LEFT, 0), counts.pop(UNREADABLE, 0)
    print("re-encrypted under the first key: "
          + ", ".join(f"{n} {what}" for what, n in counts.items()))
    if unreadable:
        print(f"{unreadable} encrypted fields decrypt with none of ENCRYPTION_KEYS (a key removed "
              "before an earlier rotation finished): they stay as they are; put that key back "
              "in the list and run rotate-keys again to keep them", file=sys.stderr)
    if left:
        return _fail(f"{left} encrypted fields were written under an old key while this ran (a "
                     "bot still running with the old ENCRYPTION_KEYS): restart every instance "
                     "with the new keys, run rotate-keys again, and keep the old key until it "
                     "reports none")
    return 1 if unreadable else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from bot.db.engine import Database
    from bot.db.migrate import upgrade

    settings = load_settings()
    setup_logging(settings.log_level)

    async def _go() -> None:
        db = Database(settings.database_url)
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(_go())
    print("database is up to date")
    return 0


def cmd_check_content(args: argparse.Namespace) -> int:
    settings = load_settings()
    content = load_content(settings.content_dir)
    from bot.intake.spec import load_intake
    from bot.qa import build_qa

    intake = load_intake(settings.content_dir / "intake.yaml")
    qa = build_qa(content, settings.content_dir)
    from bot.reminders.plans import content_from_messages

    reminders = content_from_messages(settings.content_dir, content.messages)
    # Every other file (staff.yaml, privacy.yaml, console.yaml...) is loaded by the feature
    # that uses it: build the bot as `run` would, offline (no token, no network, no database).
    from bot.app import build_application
    from bot.sandbox import SANDBOX_TOKEN, SandboxRequest

    build_application(settings, request=SandboxRequest(), token=SANDBOX_TOKEN)
    print(f"content OK: {len(content.documents)} document(s), {len(content.nodes)} menu screens, "
          f"{len(intake.questions)} intake questions, {len(qa.config.synonyms)} synonyms, "
          f"{len(qa.config.red_flags)} red-flag phrases, {len(reminders.plans)} reminder plans")
    if not content.messages.clinic_contact:
        print(f"note: {CONTACT_MISSING}")
    return 0


def cmd_import_appointments(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from bot.clock import SystemClock
    from bot.db.engine import Database
    from bot.db.migrate import upgrade
    from bot.reminders.importer import import_appointments
    from bot.reminders.parse import InputError
    from bot.reminders.plans import content_from_messages

    settings = load_settings()
    setup_logging("WARNING")
    messages = load_content(settings.content_dir).messages
    content = content_from_messages(settings.content_dir, messages)
    path = Path(args.file)
    if not path.is_file():
        return _fail(f"{path}: no such file")

    async def _go():
        db = Database(settings.database_url)
        try:
            await upgrade(db)
            return await import_appointments(
                path, db, settings, content, now=SystemClock().now(),
                progress=lambda rows: tqdm(rows, desc="appointments", unit="row",
                                           disable=args.quiet))
        finally:
            await db.dispose()

    try:
        report = asyncio.run(_go())
    except (InputError, UnicodeDecodeError, OSError) as exc:
        return _fail(f"{path}: {exc}")
    for error in report.errors:
        print(f"{path}:{error.line}: {error.problem}", file=sys.stderr)
    for line, who, token in report.invites:
        link = (f"https://t.me/{args.bot_username}?start={token}" if args.bot_username
                else f"start={token}")
        print(f"{path}:{line}: send {who or 'the patient'} this link: {link}")
    print(f"booked {report.booked}, already booked {report.skipped}, "
          f"failed {len(report.errors)}")
    return 1 if report.errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_bot.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the bot (long polling by default)")
    run.add_argument("--webhook", action="store_true",
                     help="receive updates by webhook (WEBHOOK_URL, WEBHOOK_SECRET_TOKEN) "
                          "and serve GET /healthz")
    run.set_defaults(func=cmd_run)
    sandbox = sub.add_parser("sandbox", help="chat with the bot in the terminal, no token")
    sandbox.add_argument("--database-url", default="sqlite+aiosqlite:///sandbox.db",
                         help="where the sandbox keeps its data (default: sandbox.db)")
    sandbox.set_defaults(func=cmd_sandbox)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("check-content", help="validate content/").set_defaults(func=cmd_check_content)
    imp = sub.add_parser(
        "import-appointments", help="book appointments from a CSV file",
        description="CSV columns: patient,date,time[,duration][,area][,session]. patient is a "
                    "Telegram user id, #patient-id, a phone number or a name; date and time are "
                    "clinic time. Bad rows are reported (file:line) and never stop good ones; "
                    "the exit code is 1 if any row failed.")
    imp.add_argument("file", help="the CSV file")
    imp.add_argument("--bot-username", help="print full t.me links for new patients")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(func=cmd_import_appointments)
    sub.add_parser("new-key", help="print a new encryption key").set_defaults(func=cmd_new_key)
    sub.add_parser("rotate-keys", help="re-encrypt stored answers under the first key"
                   ).set_defaults(func=cmd_rotate_keys)
    args = parser.parse_args(argv)
    func = getattr(args, "func", cmd_run)
    from telegram.error import InvalidToken

    try:
        return func(args)
    except (ConfigError, ContentError) as exc:
        return _fail(str(exc))
    except InvalidToken:
        # PTB's message quotes the token: never printed, in one line instead.
        return _fail("BOT_TOKEN was rejected by Telegram (revoked or mistyped): get the current "
                     "one from @BotFather (or TELEGRAM_API_BASE_URL, if set, is not a Bot API "
                     "address: it ends in /bot)")
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        problem = _startup_problem(exc)
        if problem is not None:
            return _fail(problem)
        # Anything else: the traceback is for the operator, with anything token-shaped removed
        # (library messages may quote a URL that carries it).
        import traceback

        from bot.logging_setup import redact_token

        print(redact_token(traceback.format_exc()), file=sys.stderr, end="")
        return 1


if __name__ == "__main__":
    sys.exit(main())
