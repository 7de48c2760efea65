//! A self-hosted API reference page: renders `/openapi.json` in the browser, no CDN.

pub const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Candor API reference</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #1a1a1a; }
  h1 { margin-bottom: .25rem; }
  .op { border: 1px solid #ccc; border-radius: 6px; margin: 1rem 0; padding: .75rem 1rem; }
  .method { display: inline-block; min-width: 4.5rem; font-weight: 700; text-transform: uppercase; }
  .get { color: #0b5394; } .post { color: #1e7b34; } .put { color: #8a5a00; } .delete { color: #a61c1c; }
  code, pre { font-family: ui-monospace, monospace; background: #f4f4f4; }
  pre { padding: .5rem; overflow-x: auto; }
  details summary { cursor: pointer; }
</style>
</head>
<body>
<h1>Candor API reference</h1>
<p id="intro">Loading <a href="/openapi.json">/openapi.json</a>…</p>
<main id="ops"></main>
<noscript><p>This page needs JavaScript to render; the machine-readable document is at <a href="/openapi.json">/openapi.json</a>.</p></noscript>
<script>
(async () => {
  const doc = await (await fetch('/openapi.json')).json();
  const esc = s => String(s ?? '').replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
  document.getElementById('intro').innerHTML = esc(doc.info.description) + ' Version ' + esc(doc.info.version) + '.';
  const main = document.getElementById('ops');
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const sec = document.createElement('section');
      sec.className = 'op';
      const params = (op.parameters || []).map(p => `<li><code>${esc(p.name)}</code> (${esc(p.in)}${p.required ? ', required' : ''}) ${esc(p.description)}</li>`).join('');
      const responses = Object.entries(op.responses || {}).map(([code, r]) => `<li><code>${esc(code)}</code> ${esc(r.description)}</li>`).join('');
      const body = op.requestBody ? `<details><summary>Request body</summary><pre>${esc(JSON.stringify(op.requestBody.content['application/json'].schema, null, 2))}</pre></details>` : '';
      sec.innerHTML = `<h2><span class="method ${method}">${esc(method)}</span> <code>${esc(path)}</code></h2>
        <p>${esc(op.summary)}</p>${op.description ? `<p>${esc(op.description)}</p>` : ''}
        ${params ? `<h3>Parameters</h3><ul>${params}</ul>` : ''}${body}<h3>Responses</h3><ul>${responses}</ul>`;
      main.appendChild(sec);
    }
  }
  const schemas = document.createElement('section');
  schemas.innerHTML = '<h2>Schemas</h2><pre>' + esc(JSON.stringify(doc.components.schemas, null, 2)) + '</pre>';
  main.appendChild(schemas);
})();
</script>
</body>
</html>
"##;
