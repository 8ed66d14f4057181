"""The training path on numpy 2 + pandas 2.2 with ray unavailable (run by `make check-numpy2`).

Not collected by pytest (no test_ prefix): it needs its own venv with numpy 2.
"""
import os
import sys
import tempfile


class _BlockRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("ray is blocked: the training path must not need it")


sys.meta_path.insert(0, _BlockRay())
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from conftest import write_tiny_dataset  # noqa: E402
from recbole_dlrrec.runtime.quick_start import run  # noqa: E402

assert int(np.__version__.split(".")[0]) >= 2, np.__version__
root = write_tiny_dataset(tempfile.mkdtemp())
for model in ("DLRM", "DLRREC"):
    result = run(model, "tiny", config_dict={"data_path": root, "epochs": 1, "swing_max_users_per_item": None},
                 result_file=os.path.join(root, f"{model}.json"))
    assert "ray" not in sys.modules
    print(f"numpy {np.__version__}, pandas {pd.__version__}: {model} test {result['test_result']}")
