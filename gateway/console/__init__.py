"""The web console at ``/console`` (``console.enabled``): server-rendered pages over the admin API's own
operations. ``session`` holds logins and CSRF tokens, ``admin_calls`` reaches the admin API in-process,
``charts`` draws inline SVG, ``pages`` the routes and ``templates/`` the autoescaped Jinja2 pages."""
