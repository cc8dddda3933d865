"""The security tests that sync talk to ewsim over loopback HTTP."""

from ewsim.testing import ewsim, ewsim_server  # noqa: F401 (fixtures)
