"""``python -m xpcnn.bench`` still works: the tool lives in :mod:`xpcnn.tools.bench` now."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("xpcnn.tools.bench", run_name="__main__", alter_sys=True)
