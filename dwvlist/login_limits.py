"""Staff login rate limiting: django-axes, counting failures per username and client."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class LoginLimitBackend(AxesStandaloneBackend):
    """Refuse logins for a locked-out username and client; pass on calls without a request.

    Code that calls authenticate() without a request (the test client's
    login(), management commands) is not a web login to rate limit; the
    next backend, ModelBackend, checks the password as usual.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
