"""``cnnkit export``: a trained run's model as a file other tools run, ONNX or a PyTorch program.

The model is ``load_run``'s (the run's Normalize in front), so the file takes images exactly as
cnnkit's loaders return them: (N, C, H, W) float32 in [0, 1], any N.
"""

from __future__ import annotations

import argparse

from cnnkit.cli.args import home_path, run_directory
from cnnkit.errors import ConfigError

SUFFIXES = {"onnx": ".onnx", "torch": ".pt2"}
WHAT = {"onnx": "ONNX model", "torch": "PyTorch program (torch.export)"}


def add_export_parser(commands) -> None:
    """Register ``export`` on the CLI's subparsers."""
    export = commands.add_parser(
        "export",
        help="write a trained run's model as an ONNX file or a PyTorch program (.pt2)",
        description="Write RUN_DIR's model, its normalisation in front, to FILE: --format onnx "
        "(ONNX Runtime and others run it; needs pip install cnnkit[onnx]) or --format torch "
        "(a torch.export program: torch.export.load(FILE).module() runs it without cnnkit; "
        "needs pip install cnnkit[torch]). The file takes images as cnnkit's loaders return "
        "them: (N, C, H, W) float32 in [0, 1], any batch size N.",
    )
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("--format", choices=sorted(SUFFIXES), required=True)
    export.add_argument("--out", metavar="FILE", required=True, help="FILE.onnx or FILE.pt2")
    export.add_argument("--checkpoint", choices=["best", "last"], default="best")
    export.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from cnnkit.train import load_run

    out = _output(args.out, args.format)
    model, header = load_run(run_directory(args.run_dir), args.checkpoint)
    shape = tuple(header["input_shape"])
    if args.format == "torch":
        from cnnkit.interop.torch_program import save_program

        path = save_program(model, out, shape)
    else:
        from cnnkit.interop.onnx_export import export_onnx

        path = export_onnx(model, out, shape)
    count = sum(p.size for p in model.parameters())
    print(
        f"wrote {path}: {WHAT[args.format]} of {args.checkpoint}.npz of {args.run_dir} (epoch "
        f"{header['epoch']}), {count:,} parameters, input (N, {', '.join(map(str, shape))}) "
        "float32 in [0, 1]"
    )
    return 0


def _output(text: str, fmt: str):
    """--out: a file (not a directory) whose name ends in the format's suffix."""
    path = home_path(text, f"--out {text}")
    suffix = SUFFIXES[fmt]
    if path.is_dir():
        raise ConfigError(
            f"--out {text}: is a directory; give a file such as {path / 'model'}{suffix}"
        )
    if path.suffix.lower() != suffix:
        raise ConfigError(
            f"--out {text}: a {WHAT[fmt]} is written, the name must end in {suffix}; use "
            f"{path.with_suffix(suffix) if path.name else 'model' + suffix}"
        )
    return path
