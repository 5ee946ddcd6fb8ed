"""Safe model files: sklss.io.save and sklss.io.load (RELIABILITY.md rows 18 and 19).

The corpus of hostile files at the end holds pickles hidden wherever a pickle could sit,
JSON naming classes outside sklss, path traversal in member names, and damaged files. Every
one must be refused with an ``InvalidModelFileError``, and the canary file that each pickle
payload writes when unpickled must never appear.
"""

import hashlib
import io
import json
import pickle
import stat
import warnings
import zipfile

import joblib
import numpy as np
import pytest
import torch
from conftest import random_walks
from numpy.random import RandomState
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError

import sklss
from sklss import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer
from sklss import io as sio
from sklss.io import InvalidModelFileError, load, save

PAYLOAD = ("content.json", "arrays.npz", "tensors.safetensors")

# Small networks gain nothing from intra-op threads, and lose a lot on a shared machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_encoder(**kw):
    params = dict(n_components=2, hidden_layer_sizes=(8,), max_epochs=3, batch_size=64)
    return SRVTransformer(lag_time=2, **{**params, "random_state": 0, **kw})


def tiny_propagator(**kw):
    params = dict(n_kernels=2, hidden_layer_sizes=(8,), max_epochs=3, batch_size=64)
    return MDNPropagator(lag_time=2, **{**params, "random_state": 0, **kw})


def tiny_decoder(**kw):
    params = dict(hidden_layer_sizes=(8,), max_epochs=2, batch_size=16)
    return CWGANDecoder(noise_dim=2, **{**params, "random_state": 0, **kw})


@pytest.fixture(scope="module")
def data():
    X = random_walks()
    return X, [np.hstack([x, x**2]) for x in X]


@pytest.fixture(scope="module")
def fitted(data):
    X, Y = data
    return {
        "encoder": tiny_encoder().fit(X),
        "propagator": tiny_propagator().fit(X),
        "decoder": tiny_decoder().fit(X, Y),
        "simulator": LatentSpaceSimulator(
            tiny_encoder(n_components=1),
            tiny_propagator(),
            tiny_decoder(),
            lag_time=2,
            random_state=0,
        ).fit(X, Y),
        "latent_simulator": LatentSpaceSimulator(
            "passthrough", tiny_propagator(), "passthrough", lag_time=2, random_state=1
        ).fit(X),
    }


def outputs(est, X, Y):
    """Everything a fitted estimator computes, for bitwise comparison."""
    x0 = X[0][:4]
    if isinstance(est, SRVTransformer):
        return [est.transform(X[0]), est.transform(X[1].astype(np.float32)), est.score(X)]
    if isinstance(est, MDNPropagator):
        return [est.predict(X[0]), est.score(X), est.sample(x0, 50, random_state=3)]
    if isinstance(est, CWGANDecoder):
        return [est.predict(X[0]), est.sample(X[0], random_state=3), est.score(X, Y)]
    run = est.sample(x0, 30, random_state=3)
    return [est.transform(X[0]), run.latent, run.configurations]


def params_of(est):
    """``get_params()`` in comparable form: a RandomState by its state, the rest by repr."""
    return {
        k: repr(v) if not isinstance(v, RandomState) else repr(v.get_state(legacy=False))
        for k, v in est.get_params().items()
    }


def assert_bitwise_equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        if u is None:
            assert v is None
        else:
            assert np.asarray(u).dtype == np.asarray(v).dtype
            np.testing.assert_array_equal(u, v, strict=True)


@pytest.mark.parametrize(
    "name", ["encoder", "propagator", "decoder", "simulator", "latent_simulator"]
)
def test_reloaded_model_gives_bitwise_identical_outputs_and_samples(fitted, data, tmp_path, name):
    X, Y = data
    est = fitted[name]
    save(est, tmp_path / "model.sklss")
    loaded = load(tmp_path / "model.sklss")
    assert type(loaded) is type(est)
    assert params_of(loaded) == params_of(est)
    assert_bitwise_equal(outputs(loaded, X, Y), outputs(est, X, Y))
    # The fitted attributes come back with their types, shapes and values.
    for component in (est, getattr(est, "propagator_", None)):
        if component is None:
            continue
        twin = loaded if component is est else loaded.propagator_
        assert sorted(vars(twin)) == sorted(vars(component))
        for key, value in vars(component).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(getattr(twin, key), value, strict=True)
            elif isinstance(value, (int, float, str, dict, tuple)):
                assert getattr(twin, key) == value


def test_reloaded_networks_keep_weights_optimizer_state_and_history(fitted, tmp_path):
    dec = fitted["decoder"]
    save(dec, tmp_path / "dec.sklss")
    net, twin = dec.net_, load(tmp_path / "dec.sklss").net_
    for name in ("module_", "critic_", "average_"):
        for (k, a), (k2, b) in zip(
            getattr(net, name).state_dict().items(), getattr(twin, name).state_dict().items()
        ):
            assert k == k2 and torch.equal(a, b)
    for name in ("optimizer_", "critic_optimizer_"):
        saved, loaded = getattr(net, name).state_dict(), getattr(twin, name).state_dict()
        assert saved["param_groups"] == loaded["param_groups"]
        for i, state in saved["state"].items():
            assert all(torch.equal(v, loaded["state"][i][k]) for k, v in state.items())
    assert twin.average_steps_ == net.average_steps_ > 0
    assert list(twin.history) == list(net.history)


def test_unfitted_estimators_round_trip_and_stay_unfitted(tmp_path):
    from sklearn.utils.validation import check_is_fitted

    estimators = [
        SRVTransformer(lag_time=5, hidden_layer_sizes=(7, 3), random_state=RandomState(4)),
        MDNPropagator(n_kernels=5, checkpoint=str(tmp_path / "ck")),
        CWGANDecoder(activation="tanh", ema_decay=0.0),
        LatentSpaceSimulator(SRVTransformer(n_components=3), MDNPropagator(), "passthrough"),
        LatentSpaceSimulator(),
    ]
    for i, est in enumerate(estimators):
        save(est, tmp_path / f"{i}.sklss")
        loaded = load(tmp_path / f"{i}.sklss")
        # A checkpoint path is not saved: a model loaded elsewhere must not write to it.
        expected = {k: "None" if k.endswith("checkpoint") else v for k, v in params_of(est).items()}
        assert params_of(loaded) == expected
        with pytest.raises(NotFittedError):
            check_is_fitted(loaded)
    # A RandomState parameter comes back in the same state, so fits match too.
    rs = load(tmp_path / "0.sklss").random_state
    assert rs.randint(1 << 30) == np.random.RandomState(4).randint(1 << 30)


def test_feature_names_and_numpy_scalars_round_trip(fitted, tmp_path):
    import copy

    srv = copy.deepcopy(fitted["encoder"])
    srv.feature_names_in_ = np.array(["phi", "psi", "omega"], dtype=object)
    srv.extra_scalar_ = np.float32(0.25)
    save(srv, tmp_path / "srv.sklss")
    loaded = load(tmp_path / "srv.sklss")
    assert loaded.feature_names_in_.dtype == object
    assert loaded.feature_names_in_.tolist() == ["phi", "psi", "omega"]
    assert type(loaded.extra_scalar_) is np.float32 and loaded.extra_scalar_ == 0.25


def test_save_refuses_what_is_not_an_sklss_estimator(tmp_path):
    with pytest.raises(TypeError, match="stores sklss estimators.*PCA"):
        save(PCA(), tmp_path / "pca.sklss")

    class MySRV(SRVTransformer):
        pass

    with pytest.raises(TypeError, match="MySRV"):
        save(MySRV(), tmp_path / "mine.sklss")
    est = tiny_propagator()
    est.callback_ = print
    with pytest.raises(TypeError, match=r"estimator\.callback_: a builtin_function_or_method"):
        save(est, tmp_path / "callable.sklss")
    assert not (tmp_path / "callable.sklss").exists()


def test_a_failed_save_leaves_the_previous_file_intact(fitted, data, tmp_path):
    path = tmp_path / "model.sklss"
    save(fitted["propagator"], path)
    before = path.read_bytes()
    broken = tiny_propagator()
    broken.hook_ = lambda: None
    with pytest.raises(TypeError):
        save(broken, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.sklss"]
    assert load(path).score(data[0]) == fitted["propagator"].score(data[0])


def test_loading_never_calls_pickle(fitted, data, tmp_path, monkeypatch):
    save(fitted["simulator"], tmp_path / "lss.sklss")

    def tripwire(*args, **kwargs):
        raise AssertionError("pickle was called")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, tripwire)
    loaded = load(tmp_path / "lss.sklss")
    assert_bitwise_equal(outputs(loaded, *data), outputs(fitted["simulator"], *data))


def members_of(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_zip(path, members, infos=None):
    """A stored zip of ``members`` (name -> bytes); ``infos`` may give ZipInfo overrides."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, blob in members:
            info = (infos or {}).get(name) or zipfile.ZipInfo(name)
            zf.writestr(info, blob)
    return path


def resign(members):
    """Recompute the manifest's sizes and SHA-256s, as an attacker editing a file can."""
    manifest = json.loads(members["manifest.json"])
    for name in PAYLOAD:
        if name in members:
            blob = members[name]
            manifest["members"][name] = {
                "size": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(),
            }
    members["manifest.json"] = json.dumps(manifest).encode()
    return members


def repack(source, target, replace, *, resign_it=True):
    """Copy a model file with the members in ``replace`` (name -> bytes) replaced."""
    members = {**members_of(source), **replace}
    if resign_it:
        members = resign(members)
    return write_zip(target, list(members.items()))


def edit_content(source, target, edit):
    members = members_of(source)
    content = json.loads(members["content.json"])
    edit(content)
    return repack(source, target, {"content.json": json.dumps(content).encode()})


def test_row19_other_versions_load_with_a_warning_naming_both(fitted, data, tmp_path):
    save(fitted["propagator"], tmp_path / "m.sklss")
    members = members_of(tmp_path / "m.sklss")
    manifest = json.loads(members["manifest.json"])
    manifest.update(sklss_version="0.0.1", torch_version="1.13.1")
    members["manifest.json"] = json.dumps(manifest).encode()
    write_zip(tmp_path / "old.sklss", list(members.items()))
    with pytest.warns(UserWarning) as record:
        loaded = load(tmp_path / "old.sklss")
    (message,) = [str(w.message) for w in record]
    assert "sklss 0.0.1 and torch 1.13.1" in message
    assert f"sklss {sklss.__version__} and torch {torch.__version__}" in message
    assert loaded.score(data[0]) == fitted["propagator"].score(data[0])
    # The same versions give no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(tmp_path / "m.sklss")


def test_row19_a_model_trained_on_cuda_loads_on_the_cpu(fitted, data, tmp_path, monkeypatch):
    # On a machine with a GPU, the load must still take the no-GPU path that this tests.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    save(fitted["simulator"], tmp_path / "cpu.sklss")
    # A file as a CUDA machine writes it: every device entry says "cuda" (tensors are
    # always stored from CPU copies).
    members = members_of(tmp_path / "cpu.sklss")
    text = members["content.json"].decode()
    assert text.count('"device":"cpu"') == 9  # three parameters, three fitted, three nets
    cuda = text.replace('"device":"cpu"', '"device":"cuda"')
    repack(tmp_path / "cpu.sklss", tmp_path / "cuda.sklss", {"content.json": cuda.encode()})
    with pytest.warns(UserWarning, match="trained on cuda, which is not available here.*CPU"):
        loaded = load(tmp_path / "cuda.sklss")
    assert loaded.encoder_.device == "cuda"  # the parameter keeps the training device
    assert loaded.propagator_.net_.device == "cpu"
    assert_bitwise_equal(outputs(loaded, *data), outputs(fitted["simulator"], *data))


def test_a_checkpoint_is_not_loaded_as_a_model(data, tmp_path):
    tiny_propagator(checkpoint=tmp_path / "ck").fit(data[0])
    with pytest.raises(InvalidModelFileError, match="holds a 'checkpoint'.*resumed by fit"):
        load(tmp_path / "ck")


# --- the corpus of hostile and damaged files ------------------------------------------------


class Payload:
    """Unpickling this object writes the canary file: a stand-in for an attacker's code."""

    def __init__(self, canary):
        self.canary = str(canary)

    def __reduce__(self):
        return (exec, (f"open({self.canary!r}, 'w').write('the payload ran')",))


def pickled(canary):
    return pickle.dumps(Payload(canary))


def joblib_bytes(canary):
    buffer = io.BytesIO()
    joblib.dump(Payload(canary), buffer)
    return buffer.getvalue()


def torch_zip(canary):
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(2), "payload": Payload(canary)}, buffer)
    return buffer.getvalue()


def object_npy(canary):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([Payload(canary)], dtype=object))
    return buffer.getvalue()


def npz_with(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, blob in members:
            zf.writestr(name, blob)
    return buffer.getvalue()


@pytest.mark.parametrize("make", [pickled, joblib_bytes, torch_zip, object_npy])
def test_the_payloads_are_live(tmp_path, make):
    """Each payload runs its code when loaded the unsafe way, so refusing it means something."""
    canary = tmp_path / "canary"
    blob = make(canary)
    if make is torch_zip:
        torch.load(io.BytesIO(blob), weights_only=False)
    elif make is object_npy:
        np.lib.format.read_array(io.BytesIO(blob), allow_pickle=True)
    else:
        joblib.load(io.BytesIO(blob)) if make is joblib_bytes else pickle.loads(blob)
    assert canary.read_text() == "the payload ran"


def swap_class(name):
    def edit(content):
        content["estimator"]["__estimator__"] = name

    return edit


def edit_net(edit):
    def apply(content):
        edit(content["estimator"]["state"]["net_"])

    return apply


def set_state(name, value):
    def edit(content):
        content["estimator"]["state"][name] = value

    return edit


def flip_byte(blob, offset):
    return blob[:offset] + bytes([blob[offset] ^ 0xFF]) + blob[offset + 1 :]


def corpus():
    """(name, builder) pairs; ``builder(good, target, canary)`` writes a hostile file."""
    cases = []

    def case(name):
        def register(builder):
            cases.append(pytest.param(builder, id=name))
            return builder

        return register

    # Pickles, wherever one could hide.
    case("pickle-as-the-whole-file")(lambda g, t, c: t.write_bytes(pickled(c)))
    case("joblib-as-the-whole-file")(lambda g, t, c: t.write_bytes(joblib_bytes(c)))
    case("torch-save-zip-as-the-whole-file")(lambda g, t, c: t.write_bytes(torch_zip(c)))
    case("pickle-in-place-of-the-manifest")(
        lambda g, t, c: repack(g, t, {"manifest.json": pickled(c)}, resign_it=False)
    )
    case("pickle-in-place-of-the-json")(lambda g, t, c: repack(g, t, {"content.json": pickled(c)}))
    case("pickle-in-place-of-the-safetensors")(
        lambda g, t, c: repack(g, t, {"tensors.safetensors": pickled(c)})
    )
    case("torch-zip-in-place-of-the-safetensors")(
        lambda g, t, c: repack(g, t, {"tensors.safetensors": torch_zip(c)})
    )
    case("pickle-in-place-of-the-npz")(lambda g, t, c: repack(g, t, {"arrays.npz": pickled(c)}))
    case("object-array-as-an-npz-member")(
        lambda g, t, c: repack(g, t, {"arrays.npz": npz_with([("a0.npy", object_npy(c))])})
    )
    case("object-array-as-an-extra-npz-member")(
        lambda g, t, c: repack(
            g,
            t,
            {
                "arrays.npz": npz_with(
                    list(zipfile_members(members_of(g)["arrays.npz"]).items())
                    + [("evil.npy", object_npy(c))]
                )
            },
        )
    )
    case("raw-pickle-as-an-npz-member")(
        lambda g, t, c: repack(g, t, {"arrays.npz": npz_with([("a0.pkl", pickled(c))])})
    )
    case("raw-pickle-named-npy-in-the-npz")(
        lambda g, t, c: repack(g, t, {"arrays.npz": npz_with([("a0.npy", pickled(c))])})
    )

    @case("pickle-as-an-extra-listed-member")
    def _(g, t, c):
        members = resign(members_of(g))
        manifest = json.loads(members["manifest.json"])
        blob = pickled(c)
        manifest["members"]["model.pkl"] = {
            "size": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
        }
        members["manifest.json"] = json.dumps(manifest).encode()
        return write_zip(t, [*members.items(), ("model.pkl", blob)])

    case("pickle-as-an-extra-unlisted-member")(
        lambda g, t, c: write_zip(t, [*members_of(g).items(), ("data.pkl", pickled(c))])
    )
    case("zip-holding-only-a-pickle")(lambda g, t, c: write_zip(t, [("model.pkl", pickled(c))]))
    case("pickle-prepended-to-a-valid-file")(
        lambda g, t, c: t.write_bytes(pickled(c) + g.read_bytes())
    )
    case("pickle-appended-to-a-valid-file")(
        lambda g, t, c: t.write_bytes(g.read_bytes() + pickled(c))
    )

    @case("pickle-behind-an-unknown-json-tag")
    def _(g, t, c):
        payload = pickled(c).hex()
        return edit_content(g, t, set_state("_input_mean", {"__pickle__": payload}))

    # JSON naming classes outside sklss.
    for name in [
        "os.system",
        "subprocess.Popen",
        "builtins.eval",
        "sklss.io.load",
        "sklss.__builtins__",
        "sklss.SRVTransformer.__init__.__globals__",
        "sklss.encoder.SRVTransformer",
        "__main__.SRVTransformer",
        "sklss.SRVTransformer ",
        "torch.optim.adam.Adam",
        "sklearn.decomposition.PCA",
    ]:
        case(f"estimator-class-{name}")(
            lambda g, t, c, name=name: edit_content(g, t, swap_class(name))
        )
    case("estimator-class-not-a-string")(
        lambda g, t, c: edit_content(g, t, swap_class(["os", "system"]))
    )
    for slot, name in [
        ("optimizer", "os.system"),
        ("module", "subprocess.Popen"),
        ("criterion", "builtins.exec"),
        ("iterator_train", "sklss.io.load"),
        ("dataset", "sklss._checkpoint.TrainingCheckpoint"),
    ]:
        case(f"network-{slot}-class-{name}")(
            lambda g, t, c, slot=slot, name=name: edit_content(
                g, t, edit_net(lambda net: net["params"].__setitem__(slot, {"__class__": name}))
            )
        )
    case("network-class-skorch.NeuralNet")(
        lambda g, t, c: edit_content(
            g, t, edit_net(lambda net: net.__setitem__("__net__", "skorch.net.NeuralNet"))
        )
    )
    case("network-callbacks-smuggled-in")(
        lambda g, t, c: edit_content(
            g, t, edit_net(lambda net: net["params"].__setitem__("callbacks", None))
        )
    )
    case("network-attribute-replacing-a-method")(
        lambda g, t, c: edit_content(
            g, t, edit_net(lambda net: net["attributes"].__setitem__("train_step", 1))
        )
    )

    @case("mlp-layer-type-outside-the-list")
    def _(g, t, c):
        def edit(content):
            content["estimator"]["state"]["_mlp64"]["__mlp__"][1]["type"] = "Module"

        return edit_content(g, t, edit)

    for attr in ["fit", "transform", "__class__", "__dict__", "_parameter_constraints", "a.b"]:
        case(f"attribute-named-{attr}")(
            lambda g, t, c, attr=attr: edit_content(g, t, set_state(attr, 1))
        )

    @case("checkpoint-path-in-the-file")
    def _(g, t, c):
        def edit(content):
            content["estimator"]["params"]["checkpoint"] = str(c)

        return edit_content(g, t, edit)

    @case("parameter-outside-the-signature")
    def _(g, t, c):
        def edit(content):
            content["estimator"]["params"]["__init__"] = "x"

        return edit_content(g, t, edit)

    # Path traversal and links in member names.
    for name in ["../content.json", "/content.json", "..\\content.json", "a/../../content.json"]:
        case(f"member-named-{name}")(
            lambda g, t, c, name=name: write_zip(
                t, [(name if k == "content.json" else k, v) for k, v in members_of(g).items()]
            )
        )

    @case("member-that-is-a-symlink")
    def _(g, t, c):
        link = zipfile.ZipInfo("content.json")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        members = members_of(g)
        members["content.json"] = b"/etc/passwd"
        return write_zip(t, list(resign(members).items()), {"content.json": link})

    case("member-that-is-a-directory")(
        lambda g, t, c: write_zip(t, [*members_of(g).items(), ("content.json/", b"")])
    )

    @case("duplicate-member")
    def _(g, t, c):
        members = [*members_of(g).items(), ("content.json", members_of(g)["content.json"])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns of the duplicate it writes
            return write_zip(t, members)

    # Damage and tampering.
    case("empty-file")(lambda g, t, c: t.write_bytes(b""))
    case("truncated-file")(lambda g, t, c: t.write_bytes(g.read_bytes()[: g.stat().st_size // 2]))
    case("truncated-by-one-byte")(lambda g, t, c: t.write_bytes(g.read_bytes()[:-1]))

    @case("flipped-byte-in-the-tensors")
    def _(g, t, c):
        members = members_of(g)
        blob = members["tensors.safetensors"]
        members["tensors.safetensors"] = flip_byte(blob, len(blob) - 3)
        return write_zip(t, list(members.items()))

    @case("flipped-byte-in-the-json")
    def _(g, t, c):
        members = members_of(g)
        members["content.json"] = flip_byte(members["content.json"], 40)
        return write_zip(t, list(members.items()))

    @case("flipped-byte-in-the-file")
    def _(g, t, c):
        blob = g.read_bytes()
        start = blob.index(b'"estimator"')
        return t.write_bytes(flip_byte(blob, start + 5))

    @case("truncated-safetensors")
    def _(g, t, c):
        blob = members_of(g)["tensors.safetensors"]
        return repack(g, t, {"tensors.safetensors": blob[: len(blob) - 10]})

    @case("safetensors-header-garbled")
    def _(g, t, c):
        blob = members_of(g)["tensors.safetensors"]
        return repack(g, t, {"tensors.safetensors": flip_byte(blob, 10)})

    @case("safetensors-oversized-header")
    def _(g, t, c):
        blob = members_of(g)["tensors.safetensors"]
        return repack(g, t, {"tensors.safetensors": (1 << 62).to_bytes(8, "little") + blob[8:]})

    @case("safetensors-header-longer-than-the-file")
    def _(g, t, c):
        blob = members_of(g)["tensors.safetensors"]
        return repack(g, t, {"tensors.safetensors": len(blob).to_bytes(8, "little") + blob[8:]})

    def transposed(where):
        """Replace the 2-D tensor found at ``where`` in the net by its transpose."""

        def build(g, t, c):
            from safetensors.torch import load as st_load
            from safetensors.torch import save as st_save

            node = json.loads(members_of(g)["content.json"])["estimator"]["state"]["net_"]
            for step in where:
                node = node[step]
            tensors = st_load(members_of(g)["tensors.safetensors"])
            key = node["__tensor__"]
            tensors[key] = tensors[key].T.contiguous()
            return repack(g, t, {"tensors.safetensors": st_save(tensors)})

        return build

    case("weight-with-the-wrong-shape")(
        transposed(["modules", "module", "state", "__dict__", "mlp.0.weight"])
    )
    case("optimizer-moment-with-the-wrong-shape")(
        transposed(
            ["optimizers", "optimizer", "__dict__", "state", "__items__", 0, 1]
            + ["__dict__", "exp_avg"]
        )
    )

    @case("tensor-stored-but-never-referred-to")
    def _(g, t, c):
        from safetensors.torch import load as st_load
        from safetensors.torch import save as st_save

        tensors = st_load(members_of(g)["tensors.safetensors"])
        tensors["t999"] = torch.zeros(3)
        return repack(g, t, {"tensors.safetensors": st_save(tensors)})

    @case("tensor-referred-to-twice")
    def _(g, t, c):
        def edit(content):
            net = content["estimator"]["state"]["net_"]
            state = net["modules"]["module"]["state"]["__dict__"]
            first, second = list(state)[:2]
            state[second] = state[first]

        return edit_content(g, t, edit)

    case("array-reference-to-a-missing-entry")(
        lambda g, t, c: edit_content(g, t, set_state("_coef", {"__array__": "../../a0"}))
    )
    case("compressed-members")(lambda g, t, c: t.write_bytes(deflated(members_of(g))))
    case("format-version-from-the-future")(
        lambda g, t, c: repack(
            g, t, {"manifest.json": edit_manifest(g, format_version=99)}, resign_it=False
        )
    )
    case("manifest-without-checksums")(
        lambda g, t, c: repack(
            g, t, {"manifest.json": edit_manifest(g, members={})}, resign_it=False
        )
    )

    @case("manifest-with-a-duplicate-key")
    def _(g, t, c):
        text = members_of(g)["manifest.json"].decode()
        doubled = text.replace('"kind": "estimator"', '"kind": "estimator", "kind": "estimator"')
        return repack(g, t, {"manifest.json": doubled.encode()}, resign_it=False)

    case("json-nested-too-deeply")(
        lambda g, t, c: repack(g, t, {"content.json": b"[" * 100_000 + b"]" * 100_000})
    )
    case("json-that-is-not-utf8")(lambda g, t, c: repack(g, t, {"content.json": b"\xff\xfe{}"}))
    case("json-that-is-a-list")(lambda g, t, c: repack(g, t, {"content.json": b"[]"}))
    return cases


def zipfile_members(blob):
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def deflated(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return buffer.getvalue()


def edit_manifest(path, **changes):
    manifest = json.loads(members_of(path)["manifest.json"])
    manifest.update(changes)
    return json.dumps(manifest).encode()


CORPUS = corpus()


@pytest.fixture(scope="module")
def good_file(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "encoder.sklss"
    save(fitted["encoder"], path)
    return path


@pytest.mark.parametrize("build", CORPUS)
def test_row18_load_refuses_every_hostile_or_damaged_file(build, good_file, tmp_path, monkeypatch):
    canary = tmp_path / "canary"
    target = tmp_path / "hostile.sklss"
    build(good_file, target, canary)
    assert target.read_bytes() != good_file.read_bytes()
    built = []
    original = sio._Builder.build
    monkeypatch.setattr(
        sio._Builder, "build", lambda self, *a: built.append(1) or original(self, *a)
    )
    with pytest.raises(InvalidModelFileError, match=r"hostile\.sklss: ") as err:
        load(target)
    assert not canary.exists()
    # A wrong shape is found when the tensor is loaded into its layer; everything else is
    # refused before anything is built.
    assert bool(built) == ("cannot be rebuilt" in str(err.value)), err.value
    assert len(str(err.value)) > len(str(target)) + 10


def test_the_good_file_of_the_corpus_loads(good_file, data):
    assert load(good_file).score(data[0]) > 1.0


def test_row18_the_corpus_covers_every_hiding_place():
    ids = [case.id for case in CORPUS]
    counts = {
        prefix: sum(i.startswith(prefix) for i in ids)
        for prefix in (
            "pickle-",
            "joblib-",
            "torch-",
            "object-array-",
            "raw-pickle-",
            "estimator-class-",
            "network-",
            "attribute-named-",
            "member-",
            "safetensors-",
            "flipped-byte-",
            "truncated-",
        )
    }
    assert all(n > 0 for n in counts.values()), counts
    assert counts["estimator-class-"] >= 10 and counts["member-"] >= 6
    assert len(set(ids)) == len(ids) == 76
