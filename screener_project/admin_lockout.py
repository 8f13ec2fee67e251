"""The admin login lockout counts the admin's own login form only.

django-axes records every failed `authenticate()`, whichever view called it. The compatibility surface's login has
limits of its own (per IP and per email); were its failures counted here too, anyone could lock an operator out of
the admin by sending wrong passwords for the operator's email to the web client's login, and that login would answer
axes' plain-text 429 instead of its JSON errors.
"""

from __future__ import annotations

from axes.handlers.database import AxesDatabaseHandler


class AdminLoginHandler(AxesDatabaseHandler):
    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is not None and not self.is_admin_request(request):
            return None
        return super().user_login_failed(sender, credentials, request, **kwargs)
