"""The package's top-level API: lazily loaded functions, the same objects as in their modules."""
import subprocess
import sys

import pytest

import unblur


@pytest.mark.parametrize("name", [n for n in unblur.__all__ if n != "__version__"])
def test_exported_names_are_the_module_functions(name):
    import importlib

    fn = getattr(unblur, name)
    assert callable(fn)
    assert fn is getattr(importlib.import_module(unblur._EXPORTS[name]), name)
    assert name in dir(unblur)


def test_all_lists_every_export():
    assert set(unblur.__all__) == {"__version__", *unblur._EXPORTS}


def test_deblur_stays_the_function_after_its_module_is_imported():
    import unblur.blind  # importing the module must not shadow the function

    assert unblur.deblur is unblur.blind.deblur
    assert callable(unblur.deblur)


def test_unknown_attribute_raises():
    with pytest.raises(AttributeError, match="no_such_thing"):
        unblur.no_such_thing  # noqa: B018


def test_import_is_cheap():
    """``import unblur`` loads neither torch nor the submodules (the CLI's start-up time)."""
    code = "import sys, unblur; print('torch' in sys.modules, 'unblur.blind' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]



def test_run_concurrently_matches_one_thread_and_restores_the_settings():
    import torch

    from unblur._runtime import run_concurrently

    x = torch.randn(4, 1, 97, 131, generator=torch.Generator().manual_seed(0))
    calls = [lambda i=i: torch.fft.irfft2(torch.fft.rfft2(x[i]) ** 2, s=x.shape[-2:]).sum(-1) for i in range(4)]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        expected = [call() for call in calls]
    finally:
        torch.set_num_threads(before)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                out = run_concurrently(calls + [torch.is_grad_enabled])
            assert torch.get_num_threads() == threads
        finally:
            torch.set_num_threads(before)
        assert out[-1] is False  # the caller's grad mode carries over to the threads
        assert all(torch.equal(a, b) for a, b in zip(out[:-1], expected))
