"""SSE framing: the relay reader (forwarding whole events, usage, [DONE]) and reading recorded events back."""

from __future__ import annotations

import orjson

from wire.sse import SSEReader, event_payload, json_events, parse_event, split_events

USAGE_ONLY = b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}\n\n'
DELTA = b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n'


def test_relay_forwards_nothing_until_an_event_is_complete() -> None:
    r = SSEReader(drop_usage=False)
    assert r.feed(DELTA[:20]) == b""
    assert r.feed(DELTA[20:]) == DELTA


def test_relay_forwards_every_complete_event_of_a_chunk_and_holds_the_rest() -> None:
    r = SSEReader(drop_usage=False)
    assert r.feed(DELTA + DELTA[:10]) == DELTA
    assert r.feed(DELTA[10:]) == DELTA
    assert r.events == [DELTA, DELTA]


def test_relay_reads_crlf_framing_split_between_chunks() -> None:
    r = SSEReader(drop_usage=False)
    crlf = DELTA.replace(b"\n", b"\r\n")
    assert r.feed(crlf[:-1]) == b""  # the last "\n" is missing: the event is not complete yet
    assert r.feed(crlf[-1:]) == DELTA


def test_relay_notes_usage_and_drops_the_usage_only_chunk_the_client_did_not_ask_for() -> None:
    r = SSEReader(drop_usage=True)
    assert r.feed(DELTA + USAGE_ONLY + b"data: [DONE]\n\n") == DELTA + b"data: [DONE]\n\n"
    assert r.usage is not None and (r.usage.input_tokens, r.usage.output_tokens) == (3, 2)
    assert r.saw_done


def test_relay_keeps_the_usage_chunk_when_the_client_asked() -> None:
    r = SSEReader(drop_usage=False)
    assert r.feed(USAGE_ONLY) == USAGE_ONLY
    assert r.usage is not None and r.usage.total_tokens == 5


def test_relay_ignores_null_usage() -> None:
    r = SSEReader(drop_usage=True)
    chunk = b'data: {"choices": [{"index": 0, "delta": {}}], "usage": null}\n\n'
    assert r.feed(chunk) == chunk and r.usage is None


def test_relay_notes_done() -> None:
    r = SSEReader(drop_usage=False)
    r.feed(DELTA)
    assert not r.saw_done
    r.feed(b"data: [DONE]\n\n")
    assert r.saw_done


def test_flush_reads_an_unterminated_last_event_like_any_other() -> None:
    r = SSEReader(drop_usage=True)
    r.feed(DELTA)
    assert r.feed(USAGE_ONLY[:-2]) == b""
    assert r.flush() == b""  # the usage-only chunk, dropped
    assert r.usage is not None and r.events == [DELTA, USAGE_ONLY]


def test_flush_forwards_an_unterminated_event_with_its_blank_line() -> None:
    r = SSEReader(drop_usage=False)
    r.feed(b"data: [DONE]")
    assert r.flush() == b"data: [DONE]\n\n" and r.saw_done


def test_flush_of_nothing_or_blank_lines_forwards_nothing() -> None:
    r = SSEReader(drop_usage=False)
    assert r.flush() == b""
    r.feed(b"\n")
    assert r.flush() == b"" and r.events == []


def test_events_are_not_kept_when_not_asked() -> None:
    r = SSEReader(drop_usage=False, keep_events=False)
    r.feed(DELTA)
    assert r.events == []


def test_an_event_has_a_name_and_its_data_lines_joined() -> None:
    assert parse_event(b'event: response.completed\ndata: {"a":\ndata: 1}') == (
        "response.completed",
        b'{"a":\n1}',
    )
    assert parse_event(b": a comment") == (None, None)


def test_single_line_payload() -> None:
    assert event_payload(b"data: {}") == b"{}"
    assert event_payload(b"event: x\ndata: {}") == b"{}"
    assert event_payload(b"id: 1") is None


def test_recorded_blocks_split_into_events() -> None:
    blocks = [DELTA + DELTA, b"data: [DONE]\r\n\r\n", b"\n\n"]
    assert list(split_events(blocks)) == [DELTA[:-2], DELTA[:-2], b"data: [DONE]"]


def test_json_events_skip_done_and_data_that_is_not_json() -> None:
    blocks = [b'event: response.created\ndata: {"type": 1}\n\ndata: nope\n\ndata: [DONE]\n\n: keep-alive\n\n']
    assert list(json_events(blocks)) == [("response.created", {"type": 1})]


def test_json_events_parse_every_event_of_a_stream() -> None:
    docs = [{"choices": [{"index": 0, "delta": {"content": str(i)}}]} for i in range(3)]
    blocks = [b"".join(b"data: " + orjson.dumps(d) + b"\n\n" for d in docs)]
    assert [d for _, d in json_events(blocks)] == docs


def test_sequenced_reader_follows_the_last_sequence_number_relayed() -> None:
    r = SSEReader(drop_usage=False, sequenced=True)
    assert r.next_sequence == 0
    r.feed(b'event: response.created\ndata: {"type":"response.created","sequence_number":0}\n\n')
    r.feed(b'event: a\ndata: {"type":"a","sequence_number": 1}\n\nevent: b\ndata: {"type":"b","seq')
    assert r.next_sequence == 2  # the incomplete event is not relayed yet
    r.feed(b'uence_number":2,"delta":"\\"sequence_number\\":99"}\n\n')
    assert r.next_sequence == 3  # a sequence number quoted inside text is not one


def test_unsequenced_reader_does_not_look() -> None:
    r = SSEReader(drop_usage=False)
    r.feed(b'data: {"type":"a","sequence_number":5}\n\n')
    assert r.next_sequence == 0
