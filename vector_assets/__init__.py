"""vector_assets. ``vector_assets.VectorStore``, the component type a store is declared with, is
imported when first asked for, so the CLI and the core load no Dagster."""


def __getattr__(name: str):
    if name == "VectorStore":
        from vector_assets.defs.store_component import VectorStore

        return VectorStore
    raise AttributeError(f"module 'vector_assets' has no attribute {name!r}")


def __dir__() -> list[str]:  # dg lists a registry module's component types by dir()
    return sorted([*globals(), "VectorStore"])
