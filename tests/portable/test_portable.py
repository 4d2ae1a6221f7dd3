"""Every workload's small end-to-end case on Beam's PortableRunner, its user code in separate SDK
worker processes started by an external worker pool, against the same case on the local runner:
byte-identical outputs wherever the workload is deterministic (all of the compared files here)."""
import json
import os

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from tests.fixtures import servers
from tests.fixtures.workload_cases import CASES, assert_same_outputs, run_case, write_inputs

pytestmark = pytest.mark.portable


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("inputs"))
    write_inputs(root, root)
    return root


@pytest.mark.parametrize("name", list(CASES))
def test_workload_on_portable_runner_matches_the_local_runner(name, inputs, beam_services, tmp_path):
    case = CASES[name]
    local, portable = str(tmp_path / "local"), str(tmp_path / "portable")
    run_case(case, inputs, local, [])
    run_case(case, inputs, portable, beam_services.pipeline_args())
    assert_same_outputs(case, local, portable)  # bytes, dead letters, manifests, case.check


def _report_where_am_i(_, groups, path):
    """In the SDK worker: its pid, its process group, every listening socket of the servers."""
    with open(path, "w") as f:
        json.dump({"pid": os.getpid(), "pgid": os.getpgid(0),
                   "listening": servers.listening_sockets(groups)}, f)


def test_user_code_runs_in_pool_workers_and_every_server_listens_on_loopback(beam_services, tmp_path):
    """The Map runs in an SDK worker the pool started (in the pool's process group, not in this
    process), and while the job runs every listening socket of the job service (with its per-job
    control, data, state and logging servers), the pool and its workers is on 127.0.0.1."""
    groups = {s.process.pid for s in beam_services.servers}
    report = tmp_path / "worker.json"
    pipeline = beam.Pipeline(options=PipelineOptions(beam_services.pipeline_args()))
    _ = pipeline | beam.Create([None]) | beam.Map(_report_where_am_i, groups, str(report))
    result = pipeline.run()
    result.wait_until_finish()
    assert result.state == "DONE"
    seen = json.loads(report.read_text())
    pool = next(s for s in beam_services.servers if s.name == "worker_pool")
    assert seen["pid"] != os.getpid() and seen["pgid"] == pool.process.pid
    if seen["listening"] is None:
        pytest.skip("no /proc here: cannot list listening sockets")
    ports = {port for _, port in seen["listening"]}
    # the job service, the pool, and the job's control, data, state and logging servers
    assert {beam_services.job_port, beam_services.pool_port} <= ports and len(ports) >= 6, seen
    assert {address for address, _ in seen["listening"]} == {"127.0.0.1"}, seen
