"""``eie asic`` refuses bad input before any synthesis starts."""

import json

from eie.cli import main as eie_main


def _no_flow(*args, **kwargs):
    raise AssertionError("the flow started on bad input")


def test_damaged_model_is_refused_before_synthesis(tmp_path, monkeypatch, capsys):
    import eie.asic.flow
    monkeypatch.setattr(eie.asic.flow, "run_flow", _no_flow)
    model = tmp_path / "m"
    model.mkdir()
    (model / "manifest.json").write_text('{"format": "eie-network", "format_version": 99}')
    code = eie_main(["asic", "--preset", "tiny", "--model", str(model), "-o", str(tmp_path / "o"), "--json"])
    err = json.loads(capsys.readouterr().out)
    assert code == 2 and err["file"] == str(model / "manifest.json") and "format_version" in err["problem"]


def test_bad_options_are_named(tmp_path, monkeypatch, capsys):
    import eie.asic.flow
    monkeypatch.setattr(eie.asic.flow, "run_flow", _no_flow)
    assert eie_main(["asic", "--preset", "tiny", "--clock", "0", "--json"]) == 2
    assert "--clock" in json.loads(capsys.readouterr().out)["error"]
    assert eie_main(["asic", "--preset", "tiny", "--limit", "1", "--json"]) == 2
    assert "--limit" in json.loads(capsys.readouterr().out)["error"]
