"""Model facts as data: the `meta:` section of a model's config.yaml, strict, and read without torch."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from common.config import ROOT
from common.errors import ConfigError
from common.meta import IMAGENET_MEAN, InputSpec, model_meta
from harness.names import DATASET_ORDER, MODEL_ORDER, dataset_name, model_name


def _model(root: Path, name: str, meta: str) -> Path:
    """A model folder kept outside the repository (FER_MODELS_PATH) with this `meta:` section."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(textwrap.dedent(meta) + "model: {}\n", encoding="utf-8")
    return folder


def test_the_papers_names_come_from_the_models_and_datasets() -> None:
    assert [model_name(m) for m in MODEL_ORDER] == [
        "POSTER", "POSTER++", "DAN", "DDAMFN", "LNSU-Net", "Ada-DF", "MFER", "GSDNet"]
    assert [dataset_name(d) for d in DATASET_ORDER] == [
        "RAF-DB", "FER2013", "FERPlus", "ExpW", "SFEW2.0", "CK+", "synthetic"]
    # Results of a model or dataset this checkout does not have keep their own name.
    assert (model_name("gone"), dataset_name("affectnet")) == ("gone", "affectnet")


def test_input_and_weights_are_read_from_meta() -> None:
    lnsu = model_meta("lnsunet")
    assert lnsu.input == InputSpec(size=112, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear")
    assert lnsu.pretrained_aliases == {"start_0.pt": ("start_0.pth",)}
    poster = model_meta("poster")
    assert (poster.input.size, poster.input.mean) == (224, IMAGENET_MEAN)
    assert poster.pretrained_files == ("ir50.pth", "mobilefacenet_model_best.pth.tar")


def test_an_external_model_names_itself_the_same_way(tmp_path, monkeypatch) -> None:
    _model(tmp_path, "mynet", "meta:\n  display_name: My Net\n  input: {size: 96}\n")
    _model(tmp_path, "plain", "")
    monkeypatch.setenv("FER_MODELS_PATH", str(tmp_path))
    assert model_name("mynet") == "My Net"
    assert model_meta("mynet").input == InputSpec(size=96)
    # No meta section: the folder name, ImageNet input at 224, no weights.
    assert model_name("plain") == "plain"
    assert model_meta("plain").input == InputSpec() and model_meta("plain").pretrained_files == ()


def test_an_edited_meta_section_is_read_again(tmp_path, monkeypatch) -> None:
    folder = _model(tmp_path, "mynet", "meta:\n  display_name: Before\n")
    monkeypatch.setenv("FER_MODELS_PATH", str(tmp_path))
    assert model_name("mynet") == "Before"
    (folder / "config.yaml").write_text("meta:\n  display_name: After, renamed\nmodel: {}\n", encoding="utf-8")
    assert model_name("mynet") == "After, renamed"


@pytest.mark.parametrize("meta, message", [
    ("meta:\n  display: X\n", r"unknown key\(s\) meta\.display; valid keys of meta: display_name, input, "
                              r"pretrained_files, pretrained_aliases"),
    ("meta:\n  input: {size: 112, crop: 100}\n", r"meta\.input\.crop; valid keys of meta\.input: size, mean, std"),
    ("meta:\n  input: {size: '112'}\n", r"meta\.input\.size must be a positive integer \(pixels\), got '112'"),
    ("meta:\n  input: {size: true}\n", r"meta\.input\.size must be a positive integer"),
    ("meta:\n  input: {mean: [0.5, 0.5]}\n", r"meta\.input\.mean must be three numbers \(R, G, B\), got \[0\.5, 0\.5\]"),
    ("meta:\n  input: {std: [0.5, 0, 0.5]}\n", r"meta\.input\.std must be positive"),
    ("meta:\n  input: {interpolation: lanczos}\n", r"interpolation 'lanczos' unknown; valid: bilinear, bicubic, nearest"),
    ("meta:\n  input: 224\n", r"meta\.input must be a mapping, got int 224"),
    ("meta:\n  display_name: 7\n", r"meta\.display_name must be a non-empty string, got 7"),
    ("meta:\n  pretrained_files: w.pth\n", r"meta\.pretrained_files must be a list of file names, got 'w\.pth'"),
    ("meta:\n  pretrained_files: [a.pth, a.pth]\n", r"lists a file twice"),
    ("meta:\n  pretrained_files: [a.pth]\n  pretrained_aliases: {b.pth: [c.pth]}\n",
     r"meta\.pretrained_aliases names 'b\.pth', which is not one of meta\.pretrained_files: a\.pth"),
    ("meta:\n  pretrained_files: [a.pth]\n  pretrained_aliases: {a.pth: a2.pth}\n",
     r"meta\.pretrained_aliases\.a\.pth must be a list of file names"),
])
def test_a_bad_meta_section_names_the_file_the_key_and_the_valid_choices(tmp_path, monkeypatch, meta, message) -> None:
    folder = _model(tmp_path, "bad", meta)
    monkeypatch.setenv("FER_MODELS_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=message) as error:
        model_meta("bad")
    assert str(folder / "config.yaml") in str(error.value)
    with pytest.raises(ConfigError, match=message):
        model_name("bad")  # the report refuses it too, rather than showing the folder name


def test_the_harness_reads_the_facts_without_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None\n"  # any import of torch fails
            "from harness.names import model_name; from common.fingerprint import model_meta\n"
            "print(model_name('posterpp'), model_meta('posterpp')[0])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "POSTER++ ('ir50.pth', 'mobilefacenet_model_best.pth.tar')"
