'use strict';
// The login form: POST /api/login, then reload: with a session, / is the control page.
document.getElementById('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = document.getElementById('login-error');
  const button = document.getElementById('login');
  err.textContent = '';
  button.disabled = true;
  try {
    const r = await fetch('/api/login', {
      method: 'POST',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({password: document.getElementById('password').value}),
    });
    if (r.ok) {
      location.reload();
      return;
    }
    const body = await r.json().catch(() => ({}));
    if (r.status === 429) {
      err.textContent = 'Too many failed attempts. Try again in ' + (r.headers.get('Retry-After') || 60) + ' s.';
    } else if (r.status === 401) {
      err.textContent = 'Wrong password.';
    } else {
      err.textContent = body.error || r.statusText;
    }
  } catch (e) {
    err.textContent = 'The device did not answer: ' + e.message;
  } finally {
    button.disabled = false;
  }
});
