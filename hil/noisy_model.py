"""`wrap`: run any ``nn.Module`` through a backend with noise at its sites.

The wrapped model intercepts torch functions while the inner model runs. Linear/Conv calls go
to ``backend.linear``/``backend.conv`` (the backend executes every matmul, noisy or not);
BatchNorm, activation and MaxPool outputs, the input and (if distinct) the output go through
``backend.perturb``. The first run (or `NoisyModel.trace`) records the site table; every later
forward must call the same sequence of site operations, which is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, cast

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from hil.backends.base import Backend, ConvParams, SiteCall
from hil.errors import SiteError
from hil.noise import NoiseSpec, SiteNoise
from hil.sites import SITE_FUNCTIONS, Site, op_name

SiteHook = Callable[[torch.Tensor], torch.Tensor]
"""Replaces one site's output (see `NoisyModel.forward_with_hooks`)."""

_CONV_DIMS = {torch.nn.functional.conv1d: 1, torch.nn.functional.conv2d: 2,
              torch.nn.functional.conv3d: 3}


def _argument(args: Sequence[Any], kwargs: dict[str, Any], position: int, name: str,
              default: Any) -> Any:
    if len(args) > position:
        return args[position]
    return kwargs.get(name, default)


def _first_tensor(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, tuple) else value


def _replace_first(value: Any, tensor: torch.Tensor) -> Any:
    return (tensor, *value[1:]) if isinstance(value, tuple) else tensor


def _is_fresh(result: torch.Tensor, args: Sequence[Any]) -> bool:
    """True when ``result`` is a new tensor: not one of the inputs (in-place op), not a view."""
    return result._base is None and not any(result is a for a in args)


_LAYER_TYPES = (nn.Linear, nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.ReLU6,
                nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.ELU,
                nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)


def is_layer(module: nn.Module) -> bool:
    """True for a module that is one layer: its site is named by its own path.

    Standard layers, and quantised layers that wrap one (Brevitas ``QuantLinear`` subclasses
    ``nn.Linear``; ``QuantReLU`` & co. hold an ``act_quant``), so ``fc1`` stays ``1:fc1`` and
    ``relu1`` stays ``2:relu1`` whatever the layer does inside.
    """
    return isinstance(module, _LAYER_TYPES) or (
        type(module).__module__.startswith("brevitas.nn") and hasattr(module, "act_quant"))


def _same_values(output: torch.Tensor, last: torch.Tensor | None) -> bool:
    """True when ``output`` is the last site's tensor or a reshaped view of it (Flatten is no site)."""
    if last is None:
        return False
    return output is last or (
        output.data_ptr() == last.data_ptr() and output.numel() == last.numel() and output.dtype == last.dtype
    )


class _Recorder:
    """Records the site table during a clean tracing run."""

    def __init__(self, model: nn.Module) -> None:
        self.sites: list[Site] = []
        self.module_stack: list[tuple[str, bool, bool]] = []
        self.last_output: torch.Tensor | None = None
        self._handles = []
        for path, module in model.named_modules():
            is_leaf = next(module.children(), None) is None
            self._handles.append(module.register_forward_pre_hook(self._push(path, is_leaf, is_layer(module))))
            self._handles.append(module.register_forward_hook(self._pop))

    def _push(self, path: str, is_leaf: bool, layer: bool) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            self.module_stack.append((path, is_leaf, layer))

        return hook

    def _pop(self, module: nn.Module, args: Any, output: Any) -> None:
        if self.module_stack:
            self.module_stack.pop()

    def remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()

    def add(self, path: str, kind: str, op: str, tensor: torch.Tensor, macs: int = 0) -> None:
        index = len(self.sites)
        self.sites.append(Site(index, f"{index}:{path}", path, kind, op, tuple(tensor.shape[1:]), macs))
        self.last_output = tensor

    def handle(self, func: Callable[..., Any], kind: str, args: Sequence[Any],
               kwargs: dict[str, Any]) -> Any:
        result = func(*args, **kwargs)
        owner = next((entry for entry in self.module_stack if entry[2]), None)  # outermost layer module
        path, is_leaf, _ = owner or (self.module_stack[-1] if self.module_stack else ("", False, False))
        if owner is None and not is_leaf:
            path = f"{path}.{op_name(func)}" if path else op_name(func)
        output = _first_tensor(result)
        macs = 0
        if kind in ("linear", "conv"):
            weight = _argument(args, kwargs, 1, "weight", None)
            # one output element costs one weight row / filter: fan-in = weight elements per output channel
            macs = (output[0].numel() * weight[0].numel()) if weight is not None else 0
        self.add(path, kind, op_name(func), output, macs)
        return result


class _Runner:
    """Routes site operations of one forward to the backend, checking the traced sequence."""

    def __init__(self, owner: NoisyModel, hooks: Mapping[int, SiteHook] | None = None) -> None:
        self.backend = owner.backend
        self.sites = owner.sites
        if hooks is None:
            self.owned_calls = owner._owned_calls
            self.shared_calls = owner._shared_calls
        else:  # the backend computes every site clean; hooks replace some sites' outputs
            self.shared_calls = [SiteCall(s.index, s.name, s.kind) for s in self.sites]
            self.owned_calls = self.shared_calls
        self.hooks: Mapping[int, SiteHook] = hooks or {}
        self.position = 1  # site 0 is the input

    def _expect(self, kind: str, func: Callable[..., Any]) -> int:
        index = self.position
        if index >= len(self.sites) or self.sites[index].kind != kind:
            expected = self.sites[index].name if index < len(self.sites) else "no more sites"
            raise SiteError(
                f"the model's forward called {op_name(func)} ({kind}) where the traced site table "
                f"has {expected}; hil needs the same site operations in every forward — call "
                f"retrace(example_input) after changing the model"
            )
        self.position += 1
        return index

    def handle(self, func: Callable[..., Any], kind: str, args: Sequence[Any],
               kwargs: dict[str, Any]) -> Any:
        index = self._expect(kind, func)
        result = self._execute(index, func, kind, args, kwargs)
        hook = self.hooks.get(index)
        if hook is not None:
            return _replace_first(result, hook(_first_tensor(result)))
        return result

    def _execute(self, index: int, func: Callable[..., Any], kind: str, args: Sequence[Any],
                 kwargs: dict[str, Any]) -> Any:
        if kind == "linear":
            x = args[0] if args else kwargs["input"]
            weight = _argument(args, kwargs, 1, "weight", None)
            bias = _argument(args, kwargs, 2, "bias", None)
            return self.backend.linear(x, weight, bias, self.owned_calls[index])
        if kind == "conv":
            x = args[0] if args else kwargs["input"]
            params = ConvParams(
                dims=_CONV_DIMS[func],
                stride=_argument(args, kwargs, 3, "stride", 1),
                padding=_argument(args, kwargs, 4, "padding", 0),
                dilation=_argument(args, kwargs, 5, "dilation", 1),
                groups=_argument(args, kwargs, 6, "groups", 1),
            )
            weight = _argument(args, kwargs, 1, "weight", None)
            bias = _argument(args, kwargs, 2, "bias", None)
            return self.backend.conv(x, weight, bias, params, self.owned_calls[index])
        result = func(*args, **kwargs)
        tensor = _first_tensor(result)
        calls = self.owned_calls if _is_fresh(tensor, args) else self.shared_calls
        return _replace_first(result, self.backend.perturb(tensor, calls[index]))

    def finish(self, output: Any) -> Any:
        last = len(self.sites) - 1
        has_output_site = self.sites[last].kind == "output"
        expected_position = last if has_output_site else last + 1
        if self.position != expected_position:
            raise SiteError(
                f"the model's forward ran {self.position - 1} site operations but the traced "
                f"table has {expected_position - 1}; call retrace(example_input) after changing "
                f"the model"
            )
        if has_output_site and isinstance(output, torch.Tensor):
            if self.hooks:
                hook = self.hooks.get(last)
                return hook(output) if hook is not None else output
            return self.backend.perturb(output, self.shared_calls[last])
        return output


class _InterceptMode(TorchFunctionMode):
    def __init__(self, handler: Callable[..., Any]) -> None:
        super().__init__()
        self.handler = handler

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        kind = SITE_FUNCTIONS.get(func)
        if kind is None:
            return func(*args, **kwargs)
        return self.handler(func, kind, args, kwargs)


class NoisyModel(nn.Module):
    """A model whose matmuls run on a backend, with noise at its sites.

    Build it with `wrap`. The inner model stays reachable as ``.model`` (its ``state_dict`` is
    what checkpoints store).
    """

    def __init__(self, model: nn.Module, backend: Backend, noise: NoiseSpec | None = None) -> None:
        super().__init__()
        self.model = model
        self.backend = backend
        self._noise = noise or NoiseSpec()
        self._sites: tuple[Site, ...] | None = None
        self._owned_calls: list[SiteCall] = []
        self._shared_calls: list[SiteCall] = []

    @property
    def noise(self) -> NoiseSpec:
        """The noise spec in use."""
        return self._noise

    @property
    def sites(self) -> tuple[Site, ...]:
        """The site table (forward order). Raises `SiteError` if the model was never traced."""
        if self._sites is None:
            raise SiteError(
                "the model has not been traced yet: pass example_input to hil.wrap or run one "
                "forward first"
            )
        return self._sites

    @property
    def site_noise(self) -> list[SiteNoise]:
        """Resolved noise at each site, in site order."""
        return [call.noise for call in self._owned_calls]

    def set_noise(self, noise: NoiseSpec) -> None:
        """Use ``noise`` from now on (re-resolved against the site table; seed applied)."""
        self._noise = noise
        if noise.seed is not None:
            self.backend.reseed(noise.seed)
        if self._sites is not None:
            self._resolve()

    def _resolve(self) -> None:
        plan = self._noise.resolve(self.sites)
        self._shared_calls = [SiteCall(s.index, s.name, s.kind, n) for s, n in zip(self.sites, plan, strict=True)]
        self._owned_calls = [replace(c, owns_output=True) for c in self._shared_calls]

    def retrace(self, *example_args: Any, **example_kwargs: Any) -> tuple[Site, ...]:
        """Record the site table with a clean run on an example input (eval mode, no grad).

        Module train/eval flags are restored afterwards; BatchNorm statistics are untouched.
        """
        flags = [(m, m.training) for m in self.model.modules()]
        recorder = _Recorder(self.model)
        try:
            self.model.eval()
            with torch.no_grad():
                x = example_args[0]
                recorder.add("input", "input", "input", x)
                with _InterceptMode(recorder.handle):
                    output = self.model(*example_args, **example_kwargs)
                if isinstance(output, torch.Tensor) and not _same_values(output, recorder.last_output):
                    recorder.add("output", "output", "output", output)
        finally:
            recorder.remove_hooks()
            for module, training in flags:
                module.training = training
        self._sites = tuple(recorder.sites)
        self._resolve()
        check = getattr(self.backend, "check_sites", None)
        if check is not None:  # e.g. the device backend validates its layer placement
            check(self._sites)
        return self._sites

    def adopt_sites(self, sites: Sequence[Site]) -> None:
        """Use a site table traced on an equivalent model (same forward) instead of tracing this one.

        For a module that cannot run outside its backend, e.g. K stacked networks
        (`hil.stacked_networks`), whose table is any one network's.
        """
        self._sites = tuple(sites)
        self._resolve()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._sites is None:
            self.retrace(*(a[:2] if i == 0 else a for i, a in enumerate(args)), **kwargs)
        runner = _Runner(self)
        x = self.backend.perturb(args[0], self._shared_calls[0])
        with _InterceptMode(runner.handle):
            output = self.model(x, *args[1:], **kwargs)
        return runner.finish(output)

    def forward_with_site_hook(self, x: torch.Tensor, site: int, hook: SiteHook) -> Any:
        """Run clean except that site ``site``'s output is replaced by ``hook(output)``.

        The hook may change the batch size (e.g. repeat the clean activation once per noise
        draw); the rest of the forward then runs on the larger batch. This is what makes
        single-site sweeps cheap: the noise-free prefix is computed once. Models whose later
        layers also read a tensor from before the site (skip connections across it) cannot
        change the batch size in the hook.
        """
        return self.forward_with_hooks(x, {site: hook})

    def forward_with_hooks(self, x: torch.Tensor, hooks: Mapping[int, SiteHook]) -> Any:
        """Run with every site clean on the backend, each site in ``hooks`` replaced by its hook's output.

        "Clean" means the backend computes the site without the spec's noise: `GaussianBackend`
        exactly, a device with its own physical noise. Studies inject their points' noise through
        the hooks, so the same code walks any backend.
        """
        for site in hooks:
            if not 0 <= site < len(self.sites):
                raise SiteError(f"site index {site} out of range: the model has {len(self.sites)} sites")
        runner = _Runner(self, hooks)
        first = hooks.get(0)
        if first is not None:
            x = first(x)
        with _InterceptMode(runner.handle):
            output = self.model(x)
        return runner.finish(output)


def wrap(model: nn.Module, backend: Backend | str = "sim", noise: NoiseSpec | None = None,
         example_input: torch.Tensor | None = None) -> NoisyModel:
    """Wrap ``model`` so its matmuls run on ``backend`` with ``noise`` at its sites.

    Args:
        model: Any ``nn.Module``; it is moved to the backend's device.
        backend: A backend or a spec string (``"sim"``, ``"sim:seed=3"``, ``"gpu"``).
        noise: Noise spec; default clean.
        example_input: A batch used to trace the sites now. If None, the model's
            ``input_shape`` attribute (models from `hil.models` have one) is used, else the
            sites are traced on the first forward.

    Returns:
        The wrapped model; ``.sites`` lists its noise sites.

    Raises:
        SiteError: A site named in ``noise`` does not exist.
    """
    if isinstance(backend, str):
        from hil.backends import get_backend

        backend = get_backend(backend)
    model = model.to(backend.device)
    noisy = NoisyModel(model, backend, noise)
    if noisy.noise.seed is not None:
        backend.reseed(noisy.noise.seed)
    if example_input is None and hasattr(model, "input_shape"):
        shape = cast(tuple[int, ...], model.input_shape)
        example_input = torch.zeros((2, *shape), device=backend.device)
    if example_input is not None:
        noisy.retrace(example_input.to(backend.device))
    return noisy
