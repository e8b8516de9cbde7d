"""The parity fixtures' and live tests' access to an upstream checkout (STYLETTS2_UPSTREAM): the code
lives in the package (`styletts2.bench.upstream_code`), which the speed benchmark's upstream backend
uses too."""
from styletts2.bench.upstream_code import (UPSTREAM_ENV, build_upstream_model, import_upstream,  # noqa: F401
                                           upstream_path)
