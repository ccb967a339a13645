import pytest
import typer
from typer.testing import CliRunner

from scripts import train
from scripts.common import device
from scripts.common.device import resolve_device
from scripts.common.errors import UserError, reported_as_one_line
from scripts.common.options import GPU_ID, gpu_id_option


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(device, "_gpu_count", lambda: (0, "cupy is not installed"))


def test_auto_without_gpu_is_the_cpu_and_says_why(no_gpu):
    chosen = resolve_device("auto")
    assert chosen.gpu_id == -1
    assert chosen.description == "CPU (cupy is not installed; gpu_id auto)"


def test_auto_with_a_gpu_takes_it(monkeypatch):
    monkeypatch.setattr(device, "_gpu_count", lambda: (2, ""))
    monkeypatch.setattr(device, "_describe_gpu", lambda index: f"GPU {index}: Test")
    assert resolve_device("auto").gpu_id == 0


def test_minus_one_is_the_cpu(no_gpu):
    assert resolve_device("-1").gpu_id == -1


def test_explicit_gpu_without_cupy_names_the_fix(no_gpu):
    with pytest.raises(
        UserError,
        match=r"gpu_id 0 cannot be used: cupy is not installed; "
        r"pip install -r requirements/gpu.txt",
    ):
        resolve_device("0")


def test_gpu_index_beyond_the_visible_ones(monkeypatch):
    monkeypatch.setattr(device, "_gpu_count", lambda: (1, ""))
    with pytest.raises(UserError, match="gpu_id 3 cannot be used: only 1 GPU"):
        resolve_device("3")


def test_nonsense_gpu_id(no_gpu):
    with pytest.raises(UserError, match="gpu_id 'gpu' is not 'auto', -1 or a GPU index"):
        resolve_device("gpu")


def test_train_cli_refuses_an_unusable_gpu_in_one_line(tmp_path, no_gpu):
    config = tmp_path / "config.cfg"
    config.write_text("[nlp]\n")
    result = CliRunner().invoke(
        train.app, [str(config), "--output", str(tmp_path), "--gpu-id", "0"]
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "pip install -r requirements/gpu.txt" in lines[0]
    assert not (tmp_path / "model-best").exists()


def test_train_cli_refuses_mixed_precision_on_the_cpu(tmp_path, no_gpu):
    config = tmp_path / "config.cfg"
    config.write_text("[nlp]\n")
    result = CliRunner().invoke(
        train.app, [str(config), "--mixed-precision", "true", "--gpu-id", "-1"]
    )
    assert result.exit_code == 1
    assert "mixed_precision true needs a GPU" in result.output


def test_train_cli_missing_config(tmp_path):
    result = CliRunner().invoke(train.app, [str(tmp_path / "nope.cfg")])
    assert result.exit_code == 1
    assert "config not found; run the config step first" in result.output


def test_a_project_step_says_how_to_set_the_gpu_both_ways(tmp_path, no_gpu):
    config = tmp_path / "config.cfg"
    config.write_text("[nlp]\n")
    result = CliRunner().invoke(train.app, [str(config), "--gpu-id", "gpu"])
    assert result.exit_code == 1
    assert result.output.strip().endswith(
        "(set gpu_id with --gpu-id, or --vars.gpu_id in spacy project run)"
    )


def test_a_command_outside_the_project_names_only_its_own_option(no_gpu):
    app = typer.Typer()

    @app.command()
    def main(gpu_id: str = gpu_id_option()) -> None:
        with reported_as_one_line(options=GPU_ID):
            resolve_device(gpu_id)

    result = CliRunner().invoke(app, ["--gpu-id", "gpu"])
    assert result.exit_code == 1
    assert result.output.strip().endswith("(set gpu_id with --gpu-id)")
    assert "--vars" not in result.output
