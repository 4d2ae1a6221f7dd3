"""The gs:// suite's servers: a GCS emulator (gcp-storage-emulator, in memory) and Beam's job
service and external worker pool, all on 127.0.0.1, stopped by process group. This process and
the SDK workers reach the emulator through STORAGE_EMULATOR_HOST, anonymously."""
import uuid

import pytest

from tests.fixtures import servers
from tests.fixtures.beam_loopback import anonymous_gcs_if_emulated
from tests.fixtures.servers import pytest_runtest_makereport  # noqa: F401  (server logs on failure)


@pytest.fixture(scope="session")
def gcs(tmp_path_factory):
    """The emulator, with this process's environment pointing gs:// at it for the session."""
    from apache_beam.internal.gcp import auth

    logs = str(tmp_path_factory.mktemp("gcs_emulator"))
    with servers.gcs_emulator(logs) as emulator, pytest.MonkeyPatch.context() as mp:
        for name, value in emulator.env().items():
            mp.setenv(name, value)
        saved = auth._Credentials._credentials, auth._Credentials._credentials_init
        anonymous_gcs_if_emulated()
        try:
            yield emulator
        finally:
            auth._Credentials._credentials, auth._Credentials._credentials_init = saved


@pytest.fixture
def gs_root(gcs):
    """A fresh gs:// prefix for one test."""
    return f"gs://{gcs.bucket}/{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def beam_services(gcs, tmp_path_factory):
    """Job service and worker pool whose SDK workers use the emulator for gs://."""
    with servers.beam_services(str(tmp_path_factory.mktemp("beam_servers")), env=gcs.env()) as services:
        yield services

