"""CRM backend tests: the shared contract (`contract.py`) and one module per backend."""

import pytest

# The contract's asserts live outside a test_*.py module: have pytest explain their failures.
pytest.register_assert_rewrite("tests.engine.crmstore.contract")
