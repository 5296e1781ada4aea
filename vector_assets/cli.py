"""vector-assets: back up, truncate, restore, verify, drill and prune the pgvector tables of RAG
stores, with or without Dagster running.

Every command builds the same request object as its Dagster op, for one store (--store NAME,
needed when there are several; `vector-assets stores` lists them). The stores are those the code
location loads: the ones declared in defs.yaml files (vector_assets/defs/stores/, or
$VECTOR_ASSETS_STORES_DIR), and the environment's own ($VECTOR_ASSETS_PG_DSN, backed up under
$VECTOR_ASSETS_ROOT) when none is declared or it is set. Exit codes: 0 done, 1 (diff) the set
differs, 2 failed and will fail again until something is fixed, 75 failed but worth retrying
(the database was unreachable).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from vector_assets import settings
from vector_assets.core.errors import ConfigError, VectorAssetsError
from vector_assets.core.ops.backup import BackupRequest, run_backup
from vector_assets.core.ops.diff import DEFAULT_SAMPLE, LIVE, DiffRequest, DiffResult, restore_effect_lines, run_diff
from vector_assets.core.sets.row_index import CHANGED, ONLY_OURS, ONLY_THEIRS
from vector_assets.core.ops.drill import FAILED, PASSED, WARNING, DrillRequest, DrillResult, run_drill
from vector_assets.core.ops.prune import PruneRequest, PruneResult, run_prune
from vector_assets.core.ops.rekey import RekeyRequest, run_rekey
from vector_assets.core.ops.replicate import ReplicateRequest, run_replicate
from vector_assets.core.ops.store_status import StoreStatus, StoreStatusRequest, run_store_status
from vector_assets.core.ops.restore import (
    ON_CONFLICT_CHOICES,
    RestoreRequest,
    RestoreResult,
    run_restore,
)
from vector_assets.core.ops.truncate import (
    TruncateRequest,
    TruncateResult,
    run_guarded_truncate,
)
from vector_assets.core.ops.verify import VerifyRequest, VerifyResult, run_verify
from vector_assets.core.progress import ProgressEvent, ProgressReporter
from vector_assets.core.rto import WITHIN
from vector_assets.core.sets.copies import choose_copy
from vector_assets.core.sets.describe import changes_text, kind_text
from vector_assets.core.sets.encryption import Recipients
from vector_assets.core.sets.formats import FORMATS
from vector_assets.core.sets.inventory import InventoryRequest, build_inventory
from vector_assets.core.sets.manifest import FULL, INCREMENTAL
from vector_assets.core.sets.roots import open_root
from vector_assets.core.sets.storage import Root
from vector_assets.core.stores import Store
from vector_assets.core.units import count_of, human_size, megabytes_per_second
from vector_assets.store_files import choose_store, code_location_stores

EXIT_OK = 0
EXIT_DIFFERS = 1  # diff: something differs, as diff(1) says it
EXIT_FAILED = 2
EXIT_RETRYABLE = 75  # EX_TEMPFAIL
EXIT_INTERRUPTED = 130
LATEST = "latest"
BAR_REFRESH_SECONDS = 0.2


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        return args.command(args)
    except VectorAssetsError as error:
        print(f"vector-assets: {error}", file=sys.stderr)
        return EXIT_RETRYABLE if error.retryable else EXIT_FAILED
    except KeyboardInterrupt:
        print("vector-assets: stopped; what was being written was removed, nothing was changed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the output's reader went away (vector-assets list | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush is quiet
        return 0


def stop_on_sigterm(signum: int, frame: object) -> None:
    """A SIGTERM (a stopped container, a killed pod) unwinds like Ctrl-C, so a backup aborts its
    multipart uploads and removes its files instead of leaving them behind."""
    raise KeyboardInterrupt


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="vector-assets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = root.add_subparsers(required=True, metavar="COMMAND", parser_class=StoreParser)
    _add_backup(commands)
    _add_truncate(commands)
    _add_restore(commands)
    _add_verify(commands)
    _add_drill(commands)
    _add_diff(commands)
    _add_prune(commands)
    _add_list(commands)
    _add_replicate(commands)
    _add_stores(commands)
    _add_rekey(commands)
    _add_dev(commands)
    return root


class StoreParser(argparse.ArgumentParser):
    """A command's parser: each acts on one store, so each takes --store."""

    def __init__(self, *args, store_option: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if store_option:
            self.add_argument("--store", default=None, metavar="NAME",
                              help="the store to act on (needed when there are several; see `vector-assets stores`)")


def _add_backup(commands: argparse._SubParsersAction) -> None:
    backup = commands.add_parser("backup", help="back up the tables into a new timestamped set")
    backup.add_argument("--task-id", default=None, help="write into <root>/<task_id>/vector_bak (task_… or manual_…)")
    backup.add_argument("--tables", nargs="+", default=None, metavar="TABLE",
                        help="tables to back up (default: all of the store's)")
    backup.add_argument("--format", default=None, choices=list(FORMATS),
                        help="data file format (default: VECTOR_ASSETS_FORMAT, else csv)")
    backup.add_argument("--incremental", action="store_true",
                        help="only the rows added or changed since the newest set in the location, and the keys "
                        "deleted since then (a full set, saying why, when there is no usable parent)")
    _add_allow_plaintext(backup, "this set")
    backup.set_defaults(command=run_backup_command)


def _add_truncate(commands: argparse._SubParsersAction) -> None:
    truncate = commands.add_parser(
        "truncate", help="back up both tables, verify the set, then empty the tables, in one transaction",
        description="Lock the tables against writers, back both up into a new set, verify the files against "
        "the locked tables, truncate, commit. If any step fails nothing is truncated. Without --apply it is a dry "
        "run: every step, then a rollback, and the set it wrote is discarded.",
    )
    truncate.add_argument("--tables", nargs="+", default=None, metavar="TABLE",
                          help="tables to empty (default: the store's vector tables; with LangChain's collection "
                          "table, the embedding table too)")
    truncate.add_argument("--task-id", default=None, help="write the safety set into <root>/<task_id>/vector_bak")
    _add_apply(truncate, "truncate")
    truncate.add_argument("--format", default=None, choices=list(FORMATS),
                          help="the safety set's format (default: VECTOR_ASSETS_FORMAT, else csv)")
    _add_allow_plaintext(truncate, "the safety set")
    truncate.set_defaults(command=run_truncate_command)


def _add_restore(commands: argparse._SubParsersAction) -> None:
    restore = commands.add_parser(
        "restore", help="restore a set into the database, in one transaction",
        description="Load a set into the database in one transaction that rolls back on any error. "
        "Replaces the tables' rows (what they held goes into a pre_restore set first) unless --append is given. "
        "Without --apply it is a dry run: everything, then a rollback. Works with no Dagster process running.",
    )
    restore.add_argument("set", metavar="TIMESTAMP|latest", help="the set's timestamp or partition key, or 'latest' (the newest backup; safety sets only when there is nothing else)")
    restore.add_argument("--backup-path", default=None,
                         help="the set's folder relative to the root (task_…/vector_bak), when the timestamp is in several")
    restore.add_argument("--tables", nargs="+", default=None, metavar="TABLE",
                         help="tables to restore (default: all of the store's)")
    mode = restore.add_mutually_exclusive_group()
    mode.add_argument("--replace", dest="replace", action="store_true", default=True,
                      help="the default: truncate the tables first (with --collection: replace that collection)")
    mode.add_argument("--append", dest="replace", action="store_false",
                      help="append instead of replacing; --on-conflict decides what an existing key does")
    restore.add_argument("--on-conflict", default="error", choices=ON_CONFLICT_CHOICES,
                         help="when appending, fail on an existing key (default) or skip it")
    restore.add_argument("--collection", default=None, metavar="NAME",
                         help="restore only this collection (its row and its embeddings), by its name in the set; "
                         "the other collections are left as they are")
    restore.add_argument("--rename-to", default=None, metavar="NEW",
                         help="with --collection: restore it as a new collection NEW beside the current one, with "
                         "new, deterministic ids (see the README)")
    _add_apply(restore, "restore")
    restore.add_argument("--no-safety-backup", dest="safety_backup", action="store_false",
                         help="do not back up what the restore replaces first (by default it does, as a pre_restore set)")
    restore.add_argument("--target", default=None, metavar="NAME",
                         help=f"a target declared in {settings.RESTORE_TARGETS.name} (the NAME of an environment "
                         f"variable holding its DSN), or 'default' for the store's own database (the default)")
    restore.add_argument("--fire-triggers", action="store_true",
                         help="let the target tables' own triggers fire for every loaded row (by default they stay off "
                         "during the load: a pgai source table's would queue every row for embedding again)")
    restore.add_argument("--name-replaced", action="store_true",
                         help="with --apply: name the rows the restore replaced, as its dry run does (a digest scan of "
                         "the tables before the load and one after)")
    _add_allow_plaintext(restore, "the safety set of a plaintext set")
    restore.set_defaults(command=run_restore_command)


def _add_allow_plaintext(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--allow-plaintext", action="store_true",
                        help=f"write {what} unencrypted into a location that holds encrypted sets, with "
                        f"{settings.ENCRYPT_TO.name} empty (refused otherwise)")


def _add_apply(parser: argparse.ArgumentParser, verb: str) -> None:
    """A destructive command is a dry run unless told --apply, as in the Launchpad (dry_run: false)."""
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--apply", dest="dry_run", action="store_false", default=True,
                        help=f"really {verb} (default: a dry run that does everything, then rolls back)")
    choice.add_argument("--dry-run", dest="dry_run", action="store_true", help="the default; say it to be explicit")


def _add_verify(commands: argparse._SubParsersAction) -> None:
    verify = commands.add_parser("verify", help="check a set's files: present, sha256 and row counts as in the manifest")
    verify.add_argument("key", nargs="?", default=None, metavar="KEY", help="the set's partition key (default: newest)")
    verify.set_defaults(command=run_verify_command)


def _add_drill(commands: argparse._SubParsersAction) -> None:
    drill = commands.add_parser(
        "drill", help="restore a set into a scratch database, compare every row, drop the scratch database"
    )
    drill.add_argument("key", nargs="?", default=None, metavar="KEY", help="the set's partition key (default: newest)")
    drill.add_argument("--json", action="store_true", help="print the whole result as one JSON object")
    drill.set_defaults(command=run_drill_command)


def _add_diff(commands: argparse._SubParsersAction) -> None:
    diff = commands.add_parser(
        "diff", help="what differs between a set and the live tables (or another set): rows only in each, rows changed",
    )
    diff.add_argument("set", metavar="SET", help="the set's timestamp or partition key")
    diff.add_argument("--against", default=LIVE, metavar="live|SET2",
                      help="live (the store's tables now, the default) or another set's timestamp or partition key")
    diff.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, help="keys shown of each kind (default 5)")
    diff.add_argument("--json", action="store_true", help="print the whole result as one JSON object")
    diff.set_defaults(command=run_diff_command)


def _add_prune(commands: argparse._SubParsersAction) -> None:
    prune = commands.add_parser(
        "prune", help="show the retention plan; with --apply, delete the sets it marks",
        description="Keeps, per location, the newest set of each of the newest VECTOR_ASSETS_KEEP_DAILY days, "
        "_WEEKLY ISO weeks and _MONTHLY months (7 / 4 / 12), and always the newest intact set.",
    )
    prune.add_argument("--apply", action="store_true", help="really delete (default: only show the plan)")
    prune.add_argument("--offsite", action="store_true",
                       help="prune VECTOR_ASSETS_OFFSITE_ROOT with its own VECTOR_ASSETS_OFFSITE_KEEP_* counts")
    prune.set_defaults(command=run_prune_command)


def _add_replicate(commands: argparse._SubParsersAction) -> None:
    replicate = commands.add_parser(
        "replicate", help="copy every complete set that VECTOR_ASSETS_OFFSITE_ROOT lacks, checksums verified",
    )
    replicate.add_argument("--dry-run", action="store_true",
                           help="read and check every file it would copy and try the offsite root, copying nothing")
    replicate.set_defaults(command=run_replicate_command)


def _add_rekey(commands: argparse._SubParsersAction) -> None:
    rekey = commands.add_parser(
        "rekey", help="re-encrypt the root's encrypted sets to new recipients (key rotation)",
        description=f"Each encrypted set is read with the identity file named by {settings.IDENTITY_FILE.name} "
        "(a store's identity_file_env names its own variable), written again encrypted to "
        "--to, checked, and its manifest swapped last, so a stopped rekey leaves every set readable. "
        "Without --apply it is a dry run that lists what it would rekey.",
    )
    rekey.add_argument("--to", required=True, metavar="RECIPIENTS",
                       help="the new age recipients (age1…), separated by commas or spaces")
    rekey.add_argument("--offsite", action="store_true", help=f"rekey {settings.OFFSITE_ROOT.name} instead")
    _add_apply(rekey, "rekey")
    rekey.set_defaults(command=run_rekey_command)


def _add_list(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("list", help="list the complete backup sets under the root")
    listing.add_argument("--global-only", action="store_true", help="only <root>/vector_bak")
    listing.add_argument("--task-id", default=None, help="only <root>/<task_id>/vector_bak (wins over --global-only)")
    listing.add_argument("--json", action="store_true", help="print the list API's JSON instead of text")
    listing.set_defaults(command=run_list_command)


def _add_stores(commands: argparse._SubParsersAction) -> None:
    stores = commands.add_parser(
        "stores", store_option=False,
        help="list the stores: layout, database variable, tables (there, vector columns, estimated rows), newest set",
    )
    stores.set_defaults(command=run_stores_command)


def _add_dev(commands: argparse._SubParsersAction) -> None:
    dev = commands.add_parser("dev", store_option=False,
                              help="start the embedded PostgreSQL+pgvector (unless configured) and dagster dev")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", default="3000")
    dev.set_defaults(command=run_dev_command)


def chosen_store(args: argparse.Namespace) -> Store:
    return choose_store([declaration.store for declaration in code_location_stores()], args.store)


def backup_root(store: Store) -> Root:
    return open_root(settings.ROOT.get(store.environment()))


def offsite_root(store: Store) -> Root | None:
    configured = settings.OFFSITE_ROOT.get(store.environment())
    return open_root(configured) if configured else None


@contextmanager
def showing_progress() -> Iterator[ProgressReporter]:
    """A bar per table in a terminal; otherwise plain lines on stderr, so stdout stays the result."""
    if not sys.stdout.isatty():
        yield ProgressReporter(lambda event: print(event.describe(), file=sys.stderr, flush=True),
                               settings.PROGRESS_INTERVAL.seconds())
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=False),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns) as bar:
        tasks: dict[str, object] = {}

        def show(event: ProgressEvent) -> None:
            if event.key not in tasks:
                tasks[event.key] = bar.add_task(event.key, total=event.total)
            total = event.completed if event.done else event.total
            bar.update(tasks[event.key], completed=event.completed, total=total)

        yield ProgressReporter(show, BAR_REFRESH_SECONDS)


def run_backup_command(args: argparse.Namespace) -> int:
    store = chosen_store(args)
    environment = store.environment()
    with showing_progress() as progress:
        result = run_backup(BackupRequest(
            dsn=settings.store_dsn(store), root=backup_root(store), task_id=args.task_id,
            tables=store.select_tables(args.tables), format=args.format or settings.backup_format(environment),
            parts=settings.part_policy(environment), progress=progress, kind=INCREMENTAL if args.incremental else FULL,
            store=store,
            encryption=settings.store_encryption_keys(store, args.allow_plaintext),
        ))
    manifest = result.manifest
    if manifest.fallback:
        print(f"warning: {manifest.fallback}", file=sys.stderr)
    for name, entry in manifest.tables.items():
        rate = megabytes_per_second(entry.bytes, entry.copy_seconds or 0)
        parts = f" in {len(entry.parts)} parts" if entry.parts else ""
        rows = changes_text(entry) if manifest.is_increment else count_of(entry.rows, "row")
        print(f"{name}: {rows} -> {result.folder.locator(entry.file)}{parts} "
              f"({human_size(entry.bytes)}, {rate:.1f} MB/s)")
        if entry.data_checks is not None and entry.data_checks.problems():
            print(f"warning: {name}: {entry.data_checks.describe()} (data checks)", file=sys.stderr)
    print(f"set {result.timestamp} ({kind_text(manifest)}): {manifest.duration_seconds:.2f}s, "
          f"{result.megabytes_per_second:.1f} MB/s")
    return EXIT_OK


def run_truncate_command(args: argparse.Namespace) -> int:
    store = chosen_store(args)
    tables = store.select_tables(args.tables) if args.tables is not None else store.vector_tables
    with showing_progress() as progress:
        result = run_guarded_truncate(TruncateRequest(
            dsn=settings.store_dsn(store), root=backup_root(store), task_id=args.task_id, tables=tables,
            dry_run=args.dry_run, progress=progress, format=args.format or settings.backup_format(store.environment()),
            store=store,
            encryption=settings.store_encryption_keys(store, args.allow_plaintext),
        ))
    print(format_truncate(result))
    return EXIT_OK


def format_truncate(result: TruncateResult) -> str:
    return "\n".join([result.summary(), *(f"warning: {warning}" for warning in result.warnings)])


def run_restore_command(args: argparse.Namespace) -> int:
    store = chosen_store(args)
    environment, root, offsite = store.environment(), backup_root(store), offsite_root(store)
    key = choose_copy(root, offsite, None).backup_set.key if args.set == LATEST else args.set
    uses_default = args.target in (None, settings.DEFAULT_TARGET)
    target = settings.store_dsn(store) if uses_default else settings.restore_target_dsn(args.target, environment)
    with showing_progress() as progress:
        result = run_restore(RestoreRequest(
            target_dsn=target, root=root, timestamp=key, backup_path=args.backup_path,
            tables=store.select_tables(args.tables), truncate_before_restore=args.replace, dry_run=args.dry_run,
            on_conflict=args.on_conflict, configured_root=settings.ROOT.get(environment),
            safety_backup=args.safety_backup, offsite_root=offsite, progress=progress,
            index_builds=settings.index_build_settings(environment), collection=args.collection,
            rename_collection_to=args.rename_to, store=store,
            encryption=settings.store_encryption_keys(store, args.allow_plaintext), fire_triggers=args.fire_triggers,
            name_replaced_rows=args.name_replaced,
        ))
    if result.read_from_offsite:
        print(f"note: {result.read_from_offsite}", file=sys.stderr)
    if not args.safety_backup:
        print("warning: --no-safety-backup: what this restore replaced was not backed up", file=sys.stderr)
    print(format_restore(result, args.target, store))
    return EXIT_OK


def format_restore(result: RestoreResult, target: str | None = None, store: Store | None = None) -> str:
    verb = "dry run, rolled back: would restore" if result.dry_run else "restored"
    lines = [f"{verb} set {result.backup_set.key} from {result.backup_set.location.label}"]
    if result.collection is not None:
        lines.append(f"  {result.collection.describe()}")
    for table in result.tables:
        replaced = f", {table.rows_truncated:,} replaced" if result.truncated else ""
        why = "".join(f"; {rows:,} skipped: {reason}" for reason, rows in table.skipped_because.items())
        lines.append(f"  {table.table}: {table.rows_loaded:,} loaded, {table.rows_skipped:,} skipped{replaced}{why}")
    if result.tables_created:
        lines.append(f"  tables created from the set's definitions: {', '.join(result.tables_created)}")
    if result.triggers_held:
        lines.append(f"  triggers not fired during the load: {', '.join(result.triggers_held)}")
    lines += [f"  {build.message}" for build in result.index_builds]
    lines.append(f"  {result.duration_seconds:.2f}s")
    if result.changes is not None:
        lines += [f"  {line}" for line in restore_effect_lines(result.changes, done=not result.dry_run)]
    if result.dry_run:
        lines.append("nothing was changed; run with --apply to restore")
    undo = result.undo_command(target, store)
    if undo:
        lines.append(f"what it replaced is in the pre_restore set {result.safety_set.timestamp}; to undo: {undo}")
    return "\n".join(lines)


def run_verify_command(args: argparse.Namespace) -> int:
    store = chosen_store(args)
    result = run_verify(VerifyRequest(
        root=backup_root(store), key=args.key, offsite_root=offsite_root(store),
        identity_file=settings.identity_file(store.environment()),
    ))
    if result.read_from_offsite:
        print(f"note: {result.read_from_offsite}", file=sys.stderr)
    print(format_verify(result))
    return EXIT_OK if result.passed else EXIT_FAILED


def format_verify(result: VerifyResult) -> str:
    lines = [f"set {result.backup_set.key} in {result.backup_set.location.label}:"]
    lines += [f"  {'FAIL' if not o.passed else 'WARN' if o.warning else 'ok  '} {o.check}: {o.message}" for o in result.outcomes]
    lines.append("verified" if result.passed else "FAILED: the set does not match its manifest")
    return "\n".join(lines)


def run_diff_command(args: argparse.Namespace) -> int:
    """Exit 0 when nothing differs, 1 when something does (as diff(1))."""
    store = chosen_store(args)
    environment = store.environment()
    with showing_progress() as progress:
        result = run_diff(DiffRequest(
            dsn=settings.store_dsn(store), root=backup_root(store), key=args.set, against=args.against,
            sample=args.sample, store=store, encryption=settings.store_encryption_keys(store),
            configured_root=settings.ROOT.get(environment), progress=progress,
        ))
    print(json.dumps(result.as_json()) if args.json else format_diff(result))
    return EXIT_OK if result.identical else EXIT_DIFFERS


def format_diff(result: DiffResult) -> str:
    lines = [f"set {result.backup_set.key} against {result.other}:"]
    for table in result.tables:
        if table.skipped:
            lines.append(f"  {table.table}: not compared: {table.skipped}")
            continue
        lines.append(f"  {table.table}: {table.differences.describe(result.other)}")
        for name, found in [("", table.differences), *table.collections.items()]:
            if name:
                lines.append(f"    collection {name}: {found.describe(result.other)}")
            for label, keys in (("only in the set", found.samples[ONLY_OURS]), (f"only in {result.other}", found.samples[ONLY_THEIRS]),
                                ("changed", found.samples[CHANGED])):
                if keys:
                    lines.append(f"      {label}: {', '.join(keys)}")
    lines.append("identical" if result.identical else "differs")
    return "\n".join(lines)


def run_drill_command(args: argparse.Namespace) -> int:
    store = chosen_store(args)
    environment = store.environment()
    with showing_progress() as progress:
        result = run_drill(DrillRequest(
            dsn=settings.store_dsn(store), root=backup_root(store), key=args.key,
            configured_root=settings.ROOT.get(environment), offsite_root=offsite_root(store), progress=progress,
            rto_targets=settings.rto_targets(environment), index_builds=settings.index_build_settings(environment),
            store=store, recall=settings.recall_settings(environment),
            encryption=settings.store_encryption_keys(store),
        ))
    if result.read_from_offsite:
        print(f"note: {result.read_from_offsite}", file=sys.stderr)
    print(json.dumps(result.as_json()) if args.json else format_drill(result))
    return EXIT_OK if result.passed and result.recall_verdict != FAILED else EXIT_FAILED


def format_drill(result: DrillResult) -> str:
    lines = [f"drill of set {result.backup_set.key} in scratch database {result.scratch_database}:"]
    lines += [f"  {'ok  ' if t.passed else 'FAIL'} {t.message}" for t in result.tables]
    if result.recovery_time is not None:
        within = result.recovery_time.verdict == WITHIN
        lines.append(f"  {'ok  ' if within else 'WARN'} RTO: {result.recovery_time.message}")
    mark = {PASSED: "ok  ", WARNING: "WARN", FAILED: "FAIL"}
    lines += [f"  {mark[result.recall_settings.verdict(i.recall)]} search: {i.table} {i.describe()}" for i in result.recall]
    if result.restore is not None:
        lines += [f"  {'WARN' if build.spilled else 'ok  '} {build.message}" for build in result.restore.index_builds]
    dropped = "dropped" if result.scratch_dropped else "NOT dropped"
    lines.append(f"{'passed' if result.passed else 'FAILED'} in {result.duration_seconds:.2f}s; scratch database {dropped}")
    return "\n".join(lines)


def run_prune_command(args: argparse.Namespace) -> int:
    store = chosen_store(args)
    if args.offsite:
        root, policy = offsite_root(store), settings.retention_policy(store.environment(), offsite=True)
        if root is None:
            raise ConfigError(f"--offsite, but {settings.OFFSITE_ROOT.name} is not set")
    else:
        root, policy = backup_root(store), settings.retention_policy(store.environment())
    result = run_prune(PruneRequest(root=root, policy=policy, dry_run=not args.apply))
    print(format_prune(result))
    return EXIT_OK


def format_prune(result: PruneResult) -> str:
    plan = result.plan
    lines = [f"policy: {plan.policy.describe()}"]
    for planned in plan.sets:
        why = f" ({', '.join(planned.reasons)})" if planned.reasons else ""
        note = f"; {planned.note}" if planned.note else ""
        lines.append(f"  {planned.action:6} {planned.key:32} {planned.location:36} {human_size(planned.bytes):>9}{why}{note}")
    lines += [f"warning: {skipped}" for skipped in plan.skipped_locations]
    lines.append(result.summary())
    return "\n".join(lines)


def run_replicate_command(args: argparse.Namespace) -> int:
    store = chosen_store(args)
    offsite = offsite_root(store)
    if offsite is None:
        raise ConfigError(f"{settings.OFFSITE_ROOT.name} is not set: there is no second root to copy sets to")
    result = run_replicate(ReplicateRequest(root=backup_root(store), offsite_root=offsite, dry_run=args.dry_run))
    verb = "would copy" if result.dry_run else "copied"
    for backup_set in result.copied:
        print(f"{verb} {backup_set.key} ({backup_set.location.label}) to {backup_set.location.folder(offsite)}")
    for key, why in result.refused.items():
        print(f"NOT copied {key}: {why}", file=sys.stderr)
    print(f"{'dry run: ' if result.dry_run else ''}{len(result.copied)} {verb} ({human_size(result.bytes_copied)}), "
          f"{len(result.already_offsite)} already offsite, {len(result.refused)} damaged")
    return EXIT_FAILED if result.refused else EXIT_OK


def run_rekey_command(args: argparse.Namespace) -> int:
    store = chosen_store(args)
    root = offsite_root(store) if args.offsite else backup_root(store)
    if root is None:
        raise ConfigError(f"--offsite, but {settings.OFFSITE_ROOT.name} is not set")
    result = run_rekey(RekeyRequest(
        root=root, to=_recipients_from(args.to), identity_file=settings.identity_file(store.environment()),
        dry_run=args.dry_run, report=lambda line: print(line, file=sys.stderr, flush=True),
    ))
    for key in result.rekeyed if result.dry_run else ():
        print(f"would rekey {key}")
    print(result.summary())
    if result.dry_run:
        print("nothing was changed; run with --apply to rekey")
    return EXIT_OK


def _recipients_from(text: str) -> Recipients:
    recipients = Recipients.parse(text, "--to")
    if recipients is None:
        raise ConfigError("--to names no recipient")
    return recipients


def run_list_command(args: argparse.Namespace) -> int:
    store = chosen_store(args)
    request = InventoryRequest(
        root=backup_root(store), global_only=args.global_only, task_id=args.task_id,
        configured_root=settings.ROOT.get(store.environment()), offsite_root=offsite_root(store),
        current_recipients=settings.current_recipients(store.environment()),
    )
    inventory = build_inventory(request)
    print(json.dumps(inventory.to_json(), indent=2, ensure_ascii=False) if args.json else inventory.format_text())
    return EXIT_OK


def run_stores_command(args: argparse.Namespace) -> int:
    for declaration in code_location_stores():
        store = declaration.store
        dsn = settings.store_dsn(store) if store.environment().get(store.dsn_variable) else ""
        if dsn:
            status = run_store_status(StoreStatusRequest(store, dsn, backup_root(store)))
        else:
            status = StoreStatus(store, database_problem=f"environment variable {store.dsn_variable} is not set")
        print(format_store_status(status, declaration.file))
    return EXIT_OK


def format_store_status(status: StoreStatus, declared_in: str | None) -> str:
    store = status.store
    where = f"declared in {declared_in}" if declared_in else f"the environment's own ({settings.PG_DSN.name})"
    lines = [f"{store.name}: layout {store.layout}, database {store.dsn_variable}, {where}"]
    if status.database_problem:
        lines += [f"  tables: {', '.join(store.table_names)}", f"  database: {status.database_problem}"]
    lines += [f"  {table.describe()}" for table in status.tables]
    lines.append(f"  root: {settings.ROOT.get(store.environment())}")
    newest = status.root_problem or status.newest_set or "none yet"
    lines.append(f"  newest set: {newest}")
    return "\n".join(lines)


def run_dev_command(args: argparse.Namespace) -> int:
    from vector_assets.dev.server import run_dev  # dev-only: needs the 'dev' extra

    return run_dev(args.host, args.port)


if __name__ == "__main__":
    raise SystemExit(main())
