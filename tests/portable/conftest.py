"""The portable-runner suite's servers: Beam's job service and external worker pool on 127.0.0.1,
started once per session and stopped by process group (tests.fixtures.servers)."""
import pytest

from tests.fixtures import servers
from tests.fixtures.servers import pytest_runtest_makereport  # noqa: F401  (server logs on failure)


@pytest.fixture(scope="session")
def beam_services(tmp_path_factory):
    with servers.beam_services(str(tmp_path_factory.mktemp("beam_servers"))) as services:
        yield services
