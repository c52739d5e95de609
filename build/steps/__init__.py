"""Build steps. Each is one small class; variants list them as their recipe."""
