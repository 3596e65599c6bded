"""Hygiene columns: ``lang`` (langid.py's code and confidence of the first user turn), ``pii`` (personal data and
secrets, Luhn-checked cards) with its ``redact`` command, and the text filters that keep or drop languages."""

from __future__ import annotations

import json

import pytest
from conftest import alpaca_records
from typer.testing import CliRunner

from tunesift import api
from tunesift.cli import app
from tunesift.data.pii import find_pii, luhn, redact, redact_record
from tunesift.errors import InputError

runner = CliRunner()
FRENCH = "Traduisez cette phrase en anglais, s'il vous plaît, avec beaucoup de soin et de précision."
GERMAN = "Wie spät ist es jetzt in Berlin, und warum ist die Zeitzone für Reisende so wichtig?"


@pytest.fixture
def pool(tmp_path):
    records = alpaca_records(6)
    records[1] = {"instruction": FRENCH, "input": "", "output": "Please translate this sentence."}
    records[2] = {
        "conversations": [
            {"from": "human", "value": GERMAN},
            {"from": "gpt", "value": "Es ist 12 Uhr."},
            {"from": "human", "value": "And in English?"},
            {"from": "gpt", "value": "Noon."},
        ]
    }
    records[3] = {"instruction": "Write to me at jane.doe@example.org or call +1 415-555-0199.", "input": "",
                  "output": "My card is 4111 1111 1111 1111 and the server is 10.0.0.12."}  # fmt: skip
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(records))
    return path


def test_lang_reads_the_first_user_turn_and_agrees_with_langid(pool, store_dir):
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    reference = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    table = api.score("lang", pool)
    rows = table.rows
    assert [r["lang"] for r in rows[:4]] == ["en", "fr", "de", "en"]  # the conversation: its first turn, German
    for record, row in zip(json.loads(pool.read_text()), rows, strict=True):
        first = record["instruction"] if "instruction" in record else record["conversations"][0]["value"]
        code, confidence = reference.classify(first + ("\n" + record["input"] if record.get("input") else ""))
        assert row["lang"] == code and row["lang_confidence"] == pytest.approx(confidence)


def test_keep_or_drop_languages_on_the_command_line_and_in_a_recipe(pool, tmp_path, store_dir):
    def chosen(*args):
        out = tmp_path / "s.json"
        result = runner.invoke(app, ["run", "lang", str(pool), "--out", str(out), *args])
        assert result.exit_code == 0, result.output
        return json.loads((tmp_path / "s.manifest.json").read_text())["selected_indices"]

    assert chosen() == [0, 3, 4, 5]  # the recipe's own: English
    assert chosen("--keep", "fr,de") == [1, 2]
    assert chosen("--drop", "en") == [1, 2]
    recipe = tmp_path / "r.yaml"
    recipe.write_text("score: {scorer: lang}\nbudget: all\nsteps:\n  - filter: \"lang not in [en, fr]\"\n"
                      "  - select: {method: top, of: candidates}\n")  # fmt: skip
    result = runner.invoke(app, ["run", "recipe", str(recipe), str(pool), "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.manifest.json").read_text())["selected_indices"] == [2]
    recipe.write_text('score: {scorer: lang}\nsteps:\n  - filter: "lang in en"\n  - select: {method: top}\n')
    with pytest.raises(InputError, match=r"'COLUMN in \[WORD, ...\]'"):
        api.load_recipe(recipe)


@pytest.mark.parametrize(
    ("text", "kinds"),
    [("mail a.b+c@mail.example.com now", {"email": 1}), ("call (020) 7946 0958 or +44 20 7946 0958", {"phone": 2}),
     ("card 4111-1111-1111-1111", {"card_number": 1}), ("not a card 4111 1111 1111 1112", {}),
     ("hosts 192.168.1.20 and 8.8.8.8; version 1.2.3.4.5", {"ip_address": 2}),
     ("key AKIAIOSFODNN7EXAMPLE and ghp_" + "a" * 36, {"secret": 2}), ("password = hunter2hunter2", {"secret": 1}),
     ("In 1999, 1,000,000 people paid 12.50 on 2023-10-01; pi is 3.14159265358979", {})],
)  # fmt: skip
def test_pii_kinds(text, kinds):
    assert dict(find_pii(text)) == kinds


ARITHMETIC = ["Multiply 123 456 789 by 2.", "Add 100 200 300 and 400.", "Matrix rows: 10 20 30 / 400 500 600",
              "Use version 1.2.3.4 of the library.", "See section 2.3.1.4 and v 10.20.30.40.",
              "It still needed 1000 - 200 - 400 = <<1000-200-400=400>>400 pounds.", "2021-2022: Inter, 91",
              "profit 2,000,000-400,000=$<<2000000-400000=1600000>>1,600,000", "# 3 6 9 12 15 18 21 24 27 30",
              "password = generate_password(8)", "Dates 2023-10-15 and 12.05.2024; ISBN 978-3-16-148410-0"]  # fmt: skip


@pytest.mark.parametrize("text", ARITHMETIC)
def test_numbers_without_a_phone_or_address_form_are_not_personal_data(text):
    """Issue 42 P2: arithmetic was taken for phone numbers, a version for an IP address (the same texts with a
    phone word or a network word are)."""
    assert dict(find_pii(text)) == {} and redact(text)[0] == text


@pytest.mark.parametrize(
    ("text", "kind"),
    [("Call me at 555 123 4567 tomorrow.", "phone"), ("Phone: 020 7946 0958", "phone"), ("(555) 123-4567", "phone"),
     ("Leave a message at 555-123-4567.", "phone"), ("fax 555.123.4567", "phone"), ("+1 415 555 0132", "phone"),
     ("ping 10.0.0.1", "ip_address"), ("the server at 1.2.3.4", "ip_address"), ("open 8.8.4.4:53", "ip_address"),
     ("reached 192.168.1.1 today", "ip_address"), ("card 3782 822463 10005", "card_number")],
)  # fmt: skip
def test_personal_data_with_its_form_or_context_is_found(text, kind):
    assert dict(find_pii(text)) == {kind: 1}


def test_redact_leaves_a_maths_problem_and_its_answer_alone(tmp_path, store_dir):
    """Issue 42 P2 through the CLI: run pii dropped maths problems; redact changed a problem and its answer."""
    records = [{"instruction": text, "input": "", "output": "The answer is 246 913 578."} for text in ARITHMETIC]
    records.append({"instruction": "Who do I call?", "input": "", "output": "Call 555-123-4567."})
    data = tmp_path / "pool.json"
    data.write_text(json.dumps(records))
    out = tmp_path / "clean.json"
    result = runner.invoke(app, ["redact", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())[:-1] == records[:-1]
    assert json.loads(out.read_text())[-1]["output"] == "Call <PHONE>."
    result = runner.invoke(app, ["run", "pii", str(data), "--out", str(tmp_path / "kept.json")])
    assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "kept.json").read_text())) == len(ARITHMETIC)


def test_luhn_and_placeholders():
    assert luhn("4111111111111111") and luhn("79927398713") and not luhn("79927398710")
    assert redact("write to a@b.io")[0] == "write to <EMAIL>"
    record, found = redact_record({"messages": [{"role": "user", "content": "My IP is 10.1.2.3"}], "n": 3})
    assert record == {"messages": [{"role": "user", "content": "My IP is <IP_ADDRESS>"}], "n": 3}
    assert dict(found) == {"ip_address": 1}


def test_pii_as_a_filter_and_redact_writes_a_new_pool(pool, tmp_path, store_dir):
    table = api.score("pii", pool)
    assert table.rows[3]["pii"] == 4.0 and table.rows[3]["pii_kinds"] == ["card_number", "email", "ip_address",
                                                                         "phone"]  # fmt: skip
    assert all(r["pii"] == 0 for i, r in enumerate(table.rows) if i != 3)
    out = tmp_path / "clean.json"
    result = runner.invoke(app, ["run", "pii", str(pool), "--out", str(out)])
    assert result.exit_code == 0 and json.loads((tmp_path / "clean.manifest.json").read_text())[
        "selected_indices"] == [0, 1, 2, 4, 5]  # fmt: skip
    before = pool.read_text()
    red = tmp_path / "redacted.json"
    result = runner.invoke(app, ["redact", str(pool), "--out", str(red)])
    assert result.exit_code == 0, result.output
    assert pool.read_text() == before  # the input is never modified
    records = json.loads(red.read_text())
    assert records[3] == {"instruction": "Write to me at <EMAIL> or call <PHONE>.", "input": "",
                          "output": "My card is <CARD_NUMBER> and the server is <IP_ADDRESS>."}  # fmt: skip
    assert records[:3] == json.loads(before)[:3]
    manifest = json.loads((tmp_path / "redacted.manifest.json").read_text())["redact"]
    assert manifest["replaced"] == {"card_number": 1, "email": 1, "ip_address": 1, "phone": 1}
    assert manifest["changed_indices"] == [3]
    result = runner.invoke(app, ["redact", str(pool), "--out", str(pool)])
    assert result.exit_code == 2 and "is the same file as the pool" in result.output


@pytest.mark.parametrize("command", [["dedup", "--method", "exact"], ["decontaminate", "--against", "gsm8k"]])
def test_redact_on_the_commands_that_write_a_new_pool(pool, tmp_path, command):
    out = tmp_path / "new.json"
    before = pool.read_text()
    result = runner.invoke(app, [command[0], str(pool), *command[1:], "--redact", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = json.loads(out.read_text())
    assert records[3]["instruction"] == "Write to me at <EMAIL> or call <PHONE>." and pool.read_text() == before
    assert json.loads((tmp_path / "new.manifest.json").read_text())["redact"]["replaced"] == {
        "card_number": 1, "email": 1, "ip_address": 1, "phone": 1}  # fmt: skip
