"""One partition per backup set; the key is the set's timestamp."""

import dagster as dg

vector_backups_partitions = dg.DynamicPartitionsDefinition(name="vector_backups")
