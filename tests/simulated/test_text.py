"""``serving.simulated.text``: what a simulated model says, decided by the request and the seed alone."""

from __future__ import annotations

import json

from serving.simulated import text

PROMPT = "Reply to a customer who was charged twice for the annual plan"


def test_the_same_prompt_and_seed_give_the_same_answer() -> None:
    assert text.answer(PROMPT, 30, 0.5, seed=7) == text.answer(PROMPT, 30, 0.5, seed=7)


def test_a_complete_answer_repeats_the_prompts_key_words() -> None:
    said = text.answer(PROMPT, 30, 1.0, seed=0)
    assert len(said) == 30
    assert {"customer", "charged", "twice", "annual", "plan"} <= set(said)


def test_a_model_of_zero_quality_covers_less_of_the_request() -> None:
    good = " ".join(text.answer(PROMPT, 30, 1.0, seed=0))
    bad = " ".join(text.answer(PROMPT, 30, 0.0, seed=0))
    assert text.coverage(PROMPT, bad) < text.coverage(PROMPT, good)


def test_quality_is_the_share_of_complete_answers() -> None:
    prompts = [f"{PROMPT} number {i}" for i in range(400)]
    complete = sum(text.answer(p, 20, 0.8, seed=3) == text.complete_answer(p, 20) for p in prompts)
    assert 0.72 < complete / len(prompts) < 0.88


def test_the_judge_prefers_the_answer_covering_more_of_the_request() -> None:
    good = " ".join(text.answer(PROMPT, 30, 1.0, seed=0))
    bad = " ".join(text.answer(PROMPT, 30, 0.0, seed=0))
    prompt = f"[Rubric]\nbe right\n\n[Request]\n{PROMPT}\n\n[Answer 1]\n{bad}\n\n[Answer 2]\n{good}\n\nWhich answer is better?"
    reply = text.judge_verdict(prompt)
    assert reply is not None
    assert json.loads(reply)["winner"] == "2"


def test_a_prompt_that_is_not_a_comparison_gets_no_verdict() -> None:
    assert text.judge_verdict(PROMPT) is None


def test_vectors_have_unit_length_and_the_asked_dimensions() -> None:
    v = text.vector(PROMPT, 16, seed=0)
    assert len(v) == 16
    assert abs(sum(x * x for x in v) - 1) < 1e-4
