"""``python -m xpcnn.gpu_check`` still works: the tool lives in :mod:`xpcnn.tools.gpu_check` now."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("xpcnn.tools.gpu_check", run_name="__main__", alter_sys=True)
