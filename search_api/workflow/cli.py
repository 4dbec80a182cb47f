"""``patentmatch demands ...`` and ``patentmatch contacts ...``: operator commands.

They work on Elasticsearch directly, like the operator endpoints, and need no API
key. E-mails they queue (after a contacts import) are sent by the API's outbox
worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import elasticsearch
from elasticsearch import AsyncElasticsearch

from patentmatch.config import Settings, load_settings
from search_api.workflow import validation
from search_api.workflow.contacts import ContactsImportError, parse_contacts_csv
from search_api.workflow.lifecycle import Answer, Status, WorkflowError
from search_api.workflow.routes import operator_view, summary_view
from search_api.workflow.service import Workflow

logger = logging.getLogger(__name__)

Command = Callable[[Workflow, argparse.Namespace], Awaitable[int]]


def _es_url(settings: Settings) -> str:
    return settings.es_url or f"http://127.0.0.1:{settings.es_port}"


async def _with_workflow(settings: Settings, command: Command, args: argparse.Namespace) -> int:
    es = AsyncElasticsearch(_es_url(settings), request_timeout=settings.es_request_timeout_s)
    try:
        workflow = Workflow(settings, es, recommend=None)
        await workflow.start()
        return await command(workflow, args)
    finally:
        await es.close()


def _runner(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = load_settings(args.config)
        try:
            return asyncio.run(_with_workflow(settings, command, args))
        except ContactsImportError as exc:
            print("error: contacts file rejected, nothing imported:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
            return 1
        except WorkflowError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
        except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as exc:
            print(f"error: Elasticsearch at {_es_url(settings)} is unreachable: {exc}",
                  file=sys.stderr)
            return 1

    return run


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


##### contacts


async def _contacts_import(workflow: Workflow, args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise WorkflowError(f"contacts file {str(path)!r} not found")
    rows = parse_contacts_csv(path.read_bytes(), path.name)
    imported = await workflow.contacts.import_rows(rows, path.name)
    dispatched = await workflow.dispatch_waiting()
    print(f"contacts imported from {path}: {imported}")
    if dispatched:
        print(f"e-mails queued for {len(dispatched)} demands: {', '.join(dispatched)}")
    missing = await workflow.missing_contacts()
    if missing:
        print(f"{len(missing)} applicants still have no contact; see "
              "`patentmatch contacts missing`")
    return 0


async def _contacts_missing(workflow: Workflow, args: argparse.Namespace) -> int:
    missing = await workflow.missing_contacts()
    if args.json:
        _print_json(missing)
        return 0
    if not missing:
        print("every applicant of a selected patent has a contact")
        return 0
    print("applicant\tblocked patents\tdemands\tpatents")
    for item in missing:
        print(f"{item['applicant']}\t{item['blocked_patents']}\t"
              f"{','.join(item['demand_ids'])}\t{','.join(item['application_numbers'])}")
    return 0


async def _contacts_list(workflow: Workflow, args: argparse.Namespace) -> int:
    total, contacts = await workflow.contacts.list(size=args.limit)
    if args.json:
        _print_json({"total": total, "contacts": contacts})
        return 0
    for contact in contacts:
        print(f"{contact['applicant']}\t{';'.join(contact['emails'])}\t"
              f"{contact.get('office') or ''}")
    print(f"{len(contacts)} of {total} contacts shown")
    return 0


##### demands


async def _demands_list(workflow: Workflow, args: argparse.Namespace) -> int:
    total, hits = await workflow.demands.search(status=args.status, company=args.company,
                                                size=args.limit)
    rows = [summary_view(demand_id, demand) for demand_id, demand in hits]
    if args.json:
        _print_json({"total": total, "demands": rows})
        return 0
    for row in rows:
        print(f"{row['id']}\t{row['status']}\t{row['created_at']}\t{row['company']}\t"
              f"{row['title']}")
    print(f"{len(rows)} of {total} demands shown")
    return 0


async def _demands_show(workflow: Workflow, args: argparse.Namespace) -> int:
    _print_json(operator_view(args.demand_id, await workflow.demands.get(args.demand_id)))
    return 0


async def _demands_status(workflow: Workflow, args: argparse.Namespace) -> int:
    demand = await workflow.set_status(args.demand_id, args.status, args.note, args.actor)
    print(f"demand {args.demand_id} is now {demand['status']}")
    return 0


async def _demands_answer(workflow: Workflow, args: argparse.Namespace) -> int:
    number = validation.application_number(args.application_number, "application_number")
    demand = await workflow.record_answer(args.demand_id, number,
                                          Answer(args.answer), args.note, args.actor)
    print(f"answer recorded; demand {args.demand_id} is {demand['status']}")
    return 0


async def _outbox_list(workflow: Workflow, args: argparse.Namespace) -> int:
    total, hits = await workflow.outbox.search(args.status, size=args.limit)
    if args.json:
        _print_json({"total": total, "messages": [{"id": i, **m} for i, m in hits]})
        return 0
    for outbox_id, message in hits:
        print(f"{outbox_id}\t{message['status']}\tattempts {message['attempts']}\t"
              f"{','.join(message['to'])}\t{message.get('last_error') or ''}")
    print(f"{len(hits)} of {total} messages shown")
    return 0


async def _outbox_retry(workflow: Workflow, args: argparse.Namespace) -> int:
    await workflow.outbox.retry(args.outbox_id)
    print(f"outbox message {args.outbox_id} will be sent again by the API's worker")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``contacts`` and ``demands`` commands."""
    contacts = subparsers.add_parser(
        "contacts", help="technology-transfer office contacts of applicants")
    actions = contacts.add_subparsers(dest="contacts_action", metavar="ACTION", required=True)
    imports = actions.add_parser(
        "import", help="import a CSV file (columns applicant,email[,office,note]; several "
        "addresses separated by ';') and queue e-mails that waited for a contact")
    imports.add_argument("file", help="UTF-8 CSV file with a header row")
    imports.set_defaults(handler=_runner(_contacts_import))
    missing = actions.add_parser(
        "missing", help="list applicants of selected patents that have no contact")
    missing.add_argument("--json", action="store_true", help="print JSON")
    missing.set_defaults(handler=_runner(_contacts_missing))
    listing = actions.add_parser("list", help="list stored contacts")
    listing.add_argument("--limit", type=int, default=100, help="rows to print (default 100)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_runner(_contacts_list))

    demands = subparsers.add_parser("demands", help="registered technology demands")
    actions = demands.add_subparsers(dest="demands_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list demands, newest first")
    listing.add_argument("--status", choices=[str(s) for s in Status], help="only this status")
    listing.add_argument("--company", help="only companies matching these words")
    listing.add_argument("--limit", type=int, default=50, help="rows to print (default 50)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_runner(_demands_list))
    show = actions.add_parser("show", help="print one demand with its audit trail as JSON")
    show.add_argument("demand_id")
    show.set_defaults(handler=_runner(_demands_show))
    for name, status, text in (("close", "closed", "close a demand"),
                               ("transfer", "transferred", "record a completed transfer")):
        parser = actions.add_parser(name, help=text)
        parser.add_argument("demand_id")
        parser.add_argument("--note", help="reason, kept in the audit trail")
        parser.add_argument("--actor", default="operator:cli",
                            help="name in the audit trail (default operator:cli)")
        parser.set_defaults(handler=_runner(_demands_status), status=status)
    answer = actions.add_parser(
        "answer", help="record a rights holder's answer received by phone or letter")
    answer.add_argument("demand_id")
    answer.add_argument("application_number")
    answer.add_argument("answer", choices=[str(a) for a in Answer])
    answer.add_argument("--note", help="how the answer came, kept in the audit trail")
    answer.add_argument("--actor", default="operator:cli",
                        help="name in the audit trail (default operator:cli)")
    answer.set_defaults(handler=_runner(_demands_answer))
    outbox = actions.add_parser("outbox", help="list e-mails of the outbox")
    outbox.add_argument("--status", choices=["pending", "sending", "sent", "failed"],
                        help="only this status")
    outbox.add_argument("--limit", type=int, default=50, help="rows to print (default 50)")
    outbox.add_argument("--json", action="store_true", help="print JSON")
    outbox.set_defaults(handler=_runner(_outbox_list))
    retry = actions.add_parser("retry", help="send a failed e-mail again")
    retry.add_argument("outbox_id")
    retry.set_defaults(handler=_runner(_outbox_retry))
