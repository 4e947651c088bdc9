"""The public name under which a model's code called a torch operation.

Tools that patch Python attributes (ptflops patches ``F.relu``, ``torch.add``, ``Tensor.add``)
count a call only under the name they patched, so the name matters, not just the operation:
``F.relu(x)`` -> ``torch.nn.functional.relu``, ``torch.relu(x)`` -> ``torch.relu``,
``x.relu()`` -> ``Tensor.relu``. The operators reach a trace as the methods they call
(``x + y`` as ``Tensor.add``, ``x @ w`` as ``Tensor.matmul``), so a trace cannot tell them apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_NAMES: dict = {}


def origin(func) -> str:
    try:
        return _NAMES[func]
    except KeyError:
        pass
    except TypeError:  # an unhashable callable
        return getattr(func, "__name__", None) or str(func)
    name = getattr(func, "__name__", None) or str(func)
    if getattr(func, "__objclass__", None) is torch._C.TensorBase:
        text = f"Tensor.{name}"
    elif getattr(F, name, None) is func:
        text = f"torch.nn.functional.{name}"
    elif getattr(torch, name, None) is func:
        text = f"torch.{name}"
    else:
        text = f"{getattr(func, '__module__', None) or '?'}.{name}"
    _NAMES[func] = text
    return text
