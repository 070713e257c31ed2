"""zeroproof_nb.distributed without Dask: a clear ImportError naming the extra."""
import subprocess
import sys


def test_import_error_names_the_extra():
    code = ("import sys; sys.modules['dask'] = None; sys.modules['dask.array'] = None\n"
            "try:\n    import zeroproof_nb.distributed\n"
            "except ImportError as exc:\n    print('ERR', exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120).stdout
    assert "ERR" in out and "pip install 'zeroproof-nb[dask]'" in out
