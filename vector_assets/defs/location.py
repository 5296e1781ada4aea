"""The code location's definitions, built from its stores: each store gets its assets, jobs,
schedules, checks and sensors, and the code location shares its resources and the alert sensor."""

from collections.abc import Sequence

import dagster as dg

from vector_assets.core.errors import ConfigError
from vector_assets.core.stores import Store
from vector_assets.defs.alerts import alert_sensor
from vector_assets.defs.backup import backup_definitions
from vector_assets.defs.checks import check_definitions, check_job
from vector_assets.defs.diff import diff_definitions
from vector_assets.defs.discovery import discovery_definitions
from vector_assets.defs.drill import drill_definitions
from vector_assets.defs.freshness import freshness_definitions
from vector_assets.defs.prune import prune_definitions
from vector_assets.defs.rekey import rekey_definitions
from vector_assets.defs.replicate import replicate_definitions
from vector_assets.defs.resources import default_resources
from vector_assets.defs.restore import restore_definitions
from vector_assets.defs.store_keys import StoreKeys
from vector_assets.defs.truncate import truncate_definitions
from vector_assets.store_files import StoreDeclaration


def store_definitions(store: Store) -> dg.Definitions:
    keys = StoreKeys(store)
    checks = check_job(keys)  # run by the checks' users and by the sensor, so built once
    return dg.Definitions.merge(
        backup_definitions(keys), restore_definitions(keys), truncate_definitions(keys), drill_definitions(keys),
        check_definitions(keys, checks), discovery_definitions(keys, checks), freshness_definitions(keys),
        prune_definitions(keys), replicate_definitions(keys), rekey_definitions(keys), diff_definitions(keys),
    )


def declared_store_definitions(declaration: StoreDeclaration) -> dg.Definitions:
    """A store's definitions; a setting its file got wrong (a cron Dagster refuses) is told as
    the file's attribute."""
    try:
        return store_definitions(declaration.store)
    except ConfigError as error:
        raise declaration.refusal(error) from None


def code_location_definitions(stores: Sequence[Store | StoreDeclaration]) -> dg.Definitions:
    declarations = [store if isinstance(store, StoreDeclaration) else StoreDeclaration(store) for store in stores]
    built = [(declaration.store, declared_store_definitions(declaration)) for declaration in declarations]
    stores_by_job = {job.name: store for store, definitions in built for job in definitions.jobs or ()}
    shared = dg.Definitions(resources=default_resources(), sensors=[alert_sensor(stores_by_job)])
    return dg.Definitions.merge(shared, *(definitions for _, definitions in built))
