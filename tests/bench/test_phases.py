"""The bench's phase mapping (``tests/bench/phases.py``): which code a profile's samples are charged to."""

from __future__ import annotations

import sys
import types
from pathlib import Path

from tests.bench import phases
from tests.bench.phases import IDLE, OTHER, PROFILER, phase_of_frame, phase_of_stack


def test_the_upstream_client_library_is_the_upstream_phase() -> None:
    assert phase_of_frame("aiohttp.client_reqrep", "ClientResponse.read") == "upstream"


def test_a_module_rule_covers_the_packages_submodules() -> None:
    assert phase_of_frame("serving.http_client.pool", "Pool.get") == "upstream"


def test_a_module_rule_does_not_cover_a_module_that_only_shares_its_prefix() -> None:
    assert phase_of_frame("aiohttpx", "get") is None


def test_a_function_rule_wins_over_its_modules_rule() -> None:
    assert phase_of_frame("gateway.inference.handler", "_authenticate") == "auth"


def test_the_rest_of_a_module_with_a_function_rule_keeps_the_modules_phase() -> None:
    assert phase_of_frame("gateway.inference.handler", "InferenceHandler.handle") == "handler"


def test_the_accountants_metric_calls_are_the_metrics_phase() -> None:
    assert phase_of_frame("accounting.accountant", "Accountant._observe") == "metrics"


def test_the_rest_of_accounting_is_the_accounting_phase() -> None:
    assert phase_of_frame("accounting.accountant", "Accountant.finish") == "accounting"


def test_the_ledger_module_is_the_ledger_phase_not_accounting() -> None:
    assert phase_of_frame("accounting.ledger", "SQLiteLedger.add") == "ledger"


def test_shadow_testing_is_the_shadow_capture_phase_not_routing() -> None:
    assert phase_of_frame("routing.shadow.hub", "ShadowHub.offer") == "shadow_capture"


def test_the_gateways_own_request_cycle_is_the_server_phase() -> None:
    assert phase_of_frame("gateway.http_cycle", "Cycle.send") == "server"


def test_uvicorns_send_is_the_send_phase_not_the_server() -> None:
    assert phase_of_frame("uvicorn.protocols.http.httptools_impl", "RequestResponseCycle.send") == "send"


def test_the_sse_reader_is_the_send_phase() -> None:
    assert phase_of_frame("wire.sse", "iter_events") == "send"


def test_the_plain_proxys_framework_is_the_framework_phase() -> None:
    assert phase_of_frame("starlette.routing", "Router.__call__") == "framework"


def test_a_skipped_helper_has_no_phase_of_its_own() -> None:
    assert phase_of_frame("accounting.money", "usd") is None


def test_a_frame_no_rule_names_has_no_phase() -> None:
    assert phase_of_frame("json.decoder", "JSONDecoder.decode") is None


def test_the_samplers_handler_is_the_profiler() -> None:
    assert phase_of_frame("tests.bench.sampler", "Sampler._sample") == PROFILER


def test_a_stack_takes_the_phase_of_its_innermost_named_frame() -> None:
    stack = [
        ("json.decoder", "JSONDecoder.decode"),
        ("wire.json_object", "parse"),
        ("gateway.inference.handler", "InferenceHandler.handle"),
    ]
    assert phase_of_stack(stack, main=True) == "body"


def test_a_skipped_helper_is_charged_to_its_caller() -> None:
    stack = [("accounting.money", "usd"), ("wire.usage", "cost_headers")]
    assert phase_of_stack(stack, main=True) == "accounting"


def test_a_stack_with_no_named_frame_is_other() -> None:
    assert phase_of_stack([("json.decoder", "JSONDecoder.decode"), ("re", "compile")], main=True) == OTHER


def test_a_stack_with_only_the_event_loops_frames_is_the_loop() -> None:
    stack = [("uvicorn.server", "Server.serve"), ("asyncio.runners", "Runner.run")]
    assert phase_of_stack(stack, main=True) == "loop"


def test_a_worker_thread_waiting_innermost_is_idle() -> None:
    stack = [("threading", "Condition.wait"), ("accounting.ledger", "SQLiteLedger._writer")]
    assert phase_of_stack(stack, main=False) == IDLE


def test_the_main_threads_wait_is_charged_to_its_caller() -> None:
    stack = [("threading", "Condition.wait"), ("accounting.ledger", "SQLiteLedger.flush")]
    assert phase_of_stack(stack, main=True) == "ledger"


def test_a_wait_below_the_innermost_frame_is_not_idle() -> None:
    stack = [("accounting.ledger", "SQLiteLedger._write"), ("threading", "Condition.wait")]
    assert phase_of_stack(stack, main=False) == "ledger"


def test_every_rule_names_a_known_phase() -> None:
    known = {*phases.PHASE_KEYS, phases.SKIP, IDLE, PROFILER}
    assert {r.phase for r in phases.RULES} <= known


def test_an_idle_threads_cpu_goes_to_the_phase_its_name_says() -> None:
    doc = {
        "process_cpu_s": 0.5,
        "threads": [
            {
                "main": False,
                "name": "pointsman-ledger-writer",
                "cpu_s": 0.5,
                "stacks": [[3, [["queue", "Queue.get"]]]],
            }
        ],
    }
    assert phases.attribute(doc, requests=10).phase_s == {"ledger": 0.5}


def test_a_threads_cpu_is_spread_over_its_phases_by_samples() -> None:
    doc = {
        "process_cpu_s": 1.0,
        "threads": [
            {
                "main": True,
                "name": "MainThread",
                "cpu_s": 1.0,
                "stacks": [
                    [3, [["aiohttp.client", "ClientSession._request"]]],
                    [1, [["wire.sse", "iter_events"]]],
                ],
            }
        ],
    }
    assert phases.attribute(doc, requests=4).per_request_us() == {"upstream": 187_500.0, "send": 62_500.0}


def test_cpu_of_threads_that_ended_in_the_window_is_other() -> None:
    doc = {
        "process_cpu_s": 1.25,
        "threads": [
            {"main": True, "name": "MainThread", "cpu_s": 1.0, "stacks": [[1, [["wire.sse", "iter_events"]]]]}
        ],
    }
    assert phases.attribute(doc, requests=1).phase_s == {"send": 1.0, OTHER: 0.25}


def test_a_module_off_sys_path_is_named_as_sys_modules_knows_it(tmp_path: Path) -> None:
    """An editable install's import hook puts no directory on ``sys.path``: frames are still named by module."""
    from tests.bench import sampler

    source = tmp_path / "hooked_module.py"
    source.write_text("X = 1\n")
    mod = types.ModuleType("pkg_off_path.hooked_module")
    mod.__file__ = str(source)
    sys.modules[mod.__name__] = mod
    try:
        assert sampler._module(str(source)) == "pkg_off_path.hooked_module"
    finally:
        del sys.modules[mod.__name__]
