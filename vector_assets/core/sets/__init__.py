"""Backup sets: names, the manifest, storage, the catalog, discovery, inventory, retention."""
