"""The native profile's reading of perf: mypyc's symbols named back, stacks counted once per function, the table."""

from __future__ import annotations

from tests.bench.native_profile import FREQ, KERNEL, compiled_names, demangle, profile, table

MODULES = {
    "limits": "accounting.limits",
    "handler": "gateway.inference.handler",
    "http_client": "serving.http_client",
}


def test_a_native_method_is_named_module_class_method() -> None:
    assert (
        demangle("CPyDef_limits___Limits____admit_leased", MODULES)
        == "accounting.limits.Limits._admit_leased"
    )
    assert demangle("CPyPy_limits___Limits___commit", MODULES) == "accounting.limits.Limits.commit"


def test_a_coroutines_generator_helper_is_named_for_its_method() -> None:
    sym = "CPyDef_handler___handle_InferenceHandler_gen_____mypyc_generator_helper__"
    assert demangle(sym, MODULES) == "gateway.inference.handler.InferenceHandler.handle"
    sym = "CPyDef_http_client___wait__Conn_gen_____mypyc_generator_helper__"
    assert demangle(sym, MODULES) == "serving.http_client._Conn.wait"


def test_a_module_level_function_and_coroutine_keep_their_names() -> None:
    assert demangle("CPyDef_money___usd") == "money.usd"
    assert demangle("CPyDef_asgi___send_json_gen_____mypyc_generator_helper__") == "asgi.send_json"


def test_runtime_and_bookkeeping_symbols_are_not_functions() -> None:
    for sym in (
        "_PyEval_EvalFrameDefault",
        "CPyDict_GetItem",
        "CPyDunder_am_sendhandler___handle_InferenceHandler_gen",
        "CPyDef_limits___admit_Limits_gen_clear",
        "CPyDef_http_cycle___send_Cycle_gen_dealloc",
    ):
        assert demangle(sym, MODULES) is None, sym


def test_every_compiled_module_is_known_by_its_last_component() -> None:
    names = compiled_names()
    assert names["limits"] == "accounting.limits" and names["handler"] == "gateway.inference.handler"


_SCRIPT = """
\t  1aa340 _Py_Dealloc (/usr/lib/libpython3.11.so.1.0)
\t  1e1b6d CPyDef_limits___Limits___commit (/x/__mypyc.so)
\t  1e1b6e CPyPy_limits___Limits___commit (/x/__mypyc.so)
\t  1e215a CPyDef_handler___handle_InferenceHandler_gen_____mypyc_generator_helper__ (/x/__mypyc.so)

\tffffffff81 _raw_spin_unlock_irqrestore ([kernel.kallsyms])
\t  c3db1 Py_DECREF (inlined) (/usr/lib/libpython3.11.so.1.0)
\t  1e215a CPyDef_handler___handle_InferenceHandler_gen_____mypyc_generator_helper__ (/x/__mypyc.so)

\t  8c78 task_step_impl (/x/_asyncio.so)
"""


def test_a_function_counts_once_per_sample_and_kernel_leaves_are_counted() -> None:
    p = profile("all", _SCRIPT, requests=1, modules=MODULES)
    assert p.samples == 3
    assert p.inclusive["accounting.limits.Limits.commit"] == 1  # its wrapper and itself: one sample
    assert p.inclusive["gateway.inference.handler.InferenceHandler.handle"] == 2
    assert p.inclusive[KERNEL] == 1


def test_cpu_per_request_is_samples_over_the_rate_and_requests() -> None:
    p = profile("defaults", _SCRIPT, requests=10, modules=MODULES)
    assert p.us_per_request() == 3 * 1e6 / FREQ / 10


def test_the_table_shows_each_rows_figure_and_its_difference_from_the_first() -> None:
    a = profile("defaults", _SCRIPT, requests=100, modules=MODULES)
    b = profile("all", _SCRIPT + _SCRIPT, requests=100, modules=MODULES)
    text = table([a, b], top=10, min_us=0.0)
    line = next(
        x for x in text.splitlines() if x.startswith("gateway.inference.handler.InferenceHandler.handle")
    )
    want = 2 * 1e6 / FREQ / 100
    assert f"{want:.1f}" in line and f"{2 * want:.1f}" in line and f"+{want:.1f}" in line
    assert "Δ all" in text.splitlines()[0]
