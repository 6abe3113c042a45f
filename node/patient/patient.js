// knoop's patient page (spec: specs/patient-view.md §4, §5): reads /patient/api/view and
// shows the three views in Dutch or English; registers an objection or consent and withdraws
// one through /patient/api/consents. No framework, no inline script (the CSP forbids it).
'use strict';

const TEXT = {
  nl: {
    title: 'Mijn gegevens in het zorgnetwerk',
    other_language: 'English',
    logout: 'Uitloggen',
    intro: 'Log in om te zien welke zorgverleners gegevens over u hebben, wie uw gegevens heeft bekeken en waarom, en om toestemming te geven of bezwaar te maken.',
    login: 'Inloggen',
    loading: 'Gegevens worden opgehaald bij alle zorgverleners…',
    where_title: 'Waar staan mijn gegevens',
    where_note: 'De zorgverleners die gegevens over u hebben, met het soort gegevens.',
    who_title: 'Wie heeft mijn gegevens bekeken',
    who_note: 'Elke vraag om uw gegevens, zoals de zorgverleners die hebben vastgelegd.',
    fhir_link: 'Download als FHIR (AuditEvent)',
    consent_title: 'Mijn toestemming en bezwaar',
    object: 'Bezwaar maken tegen delen',
    permit: 'Toestemming geven voor delen',
    consent_note: 'Een bezwaar gaat altijd voor: zorgverleners delen dan niets meer met elkaar, ook niet in een spoedsituatie.',
    withdraw: 'Intrekken',
    none_holders: 'Er zijn geen zorgverleners bekend die gegevens over u hebben.',
    none_accesses: 'Niemand heeft uw gegevens opgevraagd.',
    none_consents: 'U heeft geen toestemming gegeven en geen bezwaar gemaakt.',
    unreachable: 'Deze zorgverlener is nu niet bereikbaar: wat daar is vastgelegd ontbreekt in dit overzicht.',
    refused_holder: 'Deze zorgverlener gaf geen antwoord',
    unknown_org: 'Onbekende organisatie',
    you: 'U zelf, via deze patiëntenservice',
    own_views: (n, last) => `Uw eigen inzage via deze patiëntenservice: ${n} keer vastgelegd bij uw zorgverleners, het laatst ${last}.`,
    shared: 'gedeeld',
    refused: 'geweigerd',
    rate_limited: 'geweigerd (te veel vragen)',
    btg: 'Noodtoegang (break the glass)',
    reason: 'Reden',
    role: 'rol',
    permit_label: 'Toestemming',
    deny_label: 'Bezwaar',
    registered_by: 'Vastgelegd door',
    method: 'manier',
    status: { active: 'geldig', revoked: 'ingetrokken', expired: 'verlopen', not_yet_valid: 'nog niet geldig', untrusted: 'niet vertrouwd', invalid: 'ongeldig' },
    confirm_object: 'Bezwaar maken? Zorgverleners delen dan geen gegevens meer over u, ook niet in een spoedsituatie.',
    confirm_permit: 'Toestemming geven om uw gegevens te delen tussen uw zorgverleners?',
    done: 'Vastgelegd. Het kan enkele seconden duren voordat alle zorgverleners het weten.',
    errors: {
      login_failed: 'Inloggen is niet gelukt. Probeer het opnieuw.',
      login_cancelled: 'Inloggen is afgebroken.',
      provider_unavailable: 'De inlogdienst is nu niet bereikbaar. Probeer het later opnieuw.',
      generic: 'Er ging iets mis. Probeer het opnieuw.',
    },
    kind: { locate: 'vroeg of er gegevens over u zijn', token: 'vroeg toegang tot uw gegevens', data: 'haalde gegevens op', fetch: 'vroeg gegevens op', patient: 'uw overzicht bekeken' },
    purpose: { 'regular-care': 'reguliere zorg', emergency: 'spoedzorg', 'patient-access': 'uw eigen inzage' },
    category: { summary: 'basisgegevens', medication: 'medicatie', allergies: 'allergieën', problems: 'problemen en diagnoses', lab: 'laboratorium', imaging: 'beeldvorming', 'care-plan': 'zorgplan', encounters: 'contacten', 'vital-signs': 'vitale functies', '*': 'alle gegevens' },
  },
  en: {
    title: 'My data in the care network',
    other_language: 'Nederlands',
    logout: 'Log out',
    intro: 'Log in to see which care providers hold data about you, who looked at your data and why, and to give consent or object.',
    login: 'Log in',
    loading: 'Asking every care provider…',
    where_title: 'Where is my data',
    where_note: 'The care providers that hold data about you, with the kinds of data.',
    who_title: 'Who looked at my data',
    who_note: 'Every request for your data, as the care providers recorded it.',
    fhir_link: 'Download as FHIR (AuditEvent)',
    consent_title: 'My consent and objection',
    object: 'Object to sharing',
    permit: 'Consent to sharing',
    consent_note: 'An objection always wins: care providers then share nothing with each other, not even in an emergency.',
    withdraw: 'Withdraw',
    none_holders: 'No care provider is known to hold data about you.',
    none_accesses: 'Nobody asked for your data.',
    none_consents: 'You have not given consent or objected.',
    unreachable: 'This care provider cannot be reached now: what it recorded is missing from this overview.',
    refused_holder: 'This care provider did not answer',
    unknown_org: 'Unknown organisation',
    you: 'You, through this patient service',
    own_views: (n, last) => `Your own views through this patient service: recorded ${n} times by your care providers, last ${last}.`,
    shared: 'shared',
    refused: 'refused',
    rate_limited: 'refused (too many requests)',
    btg: 'Emergency access (break the glass)',
    reason: 'Reason',
    role: 'role',
    permit_label: 'Consent',
    deny_label: 'Objection',
    registered_by: 'Registered by',
    method: 'method',
    status: { active: 'active', revoked: 'withdrawn', expired: 'expired', not_yet_valid: 'not yet valid', untrusted: 'not trusted', invalid: 'invalid' },
    confirm_object: 'Object? Care providers will then share no data about you, not even in an emergency.',
    confirm_permit: 'Consent to sharing your data between your care providers?',
    done: 'Registered. It may take a few seconds before every care provider knows.',
    errors: {
      login_failed: 'Logging in failed. Please try again.',
      login_cancelled: 'Logging in was cancelled.',
      provider_unavailable: 'The login service cannot be reached now. Please try again later.',
      generic: 'Something went wrong. Please try again.',
    },
    kind: { locate: 'asked whether data about you exists', token: 'asked for access to your data', data: 'retrieved data', fetch: 'asked for data', patient: 'your overview viewed' },
    purpose: { 'regular-care': 'regular care', emergency: 'emergency care', 'patient-access': 'your own view' },
    category: { summary: 'basic data', medication: 'medication', allergies: 'allergies', problems: 'problems and diagnoses', lab: 'laboratory', imaging: 'imaging', 'care-plan': 'care plan', encounters: 'encounters', 'vital-signs': 'vital signs', '*': 'all data' },
  },
};

const params = new URLSearchParams(location.search);
let lang = params.get('lang') === 'en' || (!params.get('lang') && localStorage.getItem('lang') === 'en') ? 'en' : 'nl';
let lastView = null;

const $ = (id) => document.getElementById(id);
const t = () => TEXT[lang];

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return e;
}

function label(map, key) {
  return (map && map[key]) || key;
}

function tags(categories) {
  return el('div', { class: 'tags' }, (categories || []).map((c) => el('span', { class: 'tag' }, label(t().category, c))));
}

function when(iso) {
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString(lang === 'en' ? 'en-GB' : 'nl-NL', { dateStyle: 'medium', timeStyle: 'short' });
}

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll('[data-t]')) {
    const v = t()[node.dataset.t];
    if (typeof v === 'string') node.textContent = v;
  }
  document.title = t().title;
  $('login-button').href = `/patient/login?lang=${lang}`;
  if (lastView) render(lastView);
}

function showError(code) {
  const e = $('error');
  e.textContent = label(t().errors, code) === code ? t().errors.generic : t().errors[code];
  e.dataset.code = code;
  e.hidden = false;
}

function renderHolders(v) {
  const list = $('holders');
  list.replaceChildren();
  if (!v.holders.length) list.append(el('li', { class: 'empty' }, t().none_holders));
  for (const h of v.holders) {
    if (h.status !== 'ok') {
      list.append(el('li', { class: 'down', 'data-node': h.node, 'data-status': h.status },
        el('div', { class: 'org' }, h.status === 'unreachable' ? t().unreachable : t().refused_holder),
        el('div', { class: 'meta' }, h.node)));
      continue;
    }
    for (const o of h.organisations) {
      list.append(el('li', { 'data-node': h.node, 'data-status': 'ok', 'data-org': o.did },
        el('div', { class: 'org' }, o.name || t().unknown_org),
        el('div', { class: 'meta' }, [o.city, o.type].filter(Boolean).join(' · ')),
        tags(o.categories)));
    }
  }
}

function renderAccesses(v) {
  const list = $('accesses');
  list.replaceChildren();
  // The patient's own views through this service: one line, not one per holder and visit.
  const own = v.accesses.filter((a) => a.kind === 'patient' && a.byThisService && a.result === 'shared');
  const others = v.accesses.filter((a) => !own.includes(a));
  if (!others.length) list.append(el('li', { class: 'empty' }, t().none_accesses));
  if (own.length) {
    list.append(el('li', { class: 'own', 'data-own-views': String(own.length) },
      el('div', { class: 'meta' }, t().own_views(own.length, when(own[0].time)))));
  }
  for (const a of others) {
    const who = a.kind === 'patient' && a.byThisService ? t().you : (a.requester.name || a.requester.did);
    const classes = [a.result, a.breakTheGlass ? 'btg' : ''].filter(Boolean).join(' ');
    list.append(el('li', { class: classes, 'data-kind': a.kind, 'data-result': a.result, 'data-requester': a.requester.did, 'data-btg': a.breakTheGlass ? 'true' : 'false' },
      el('div', { class: 'meta' }, `${when(a.time)} · ${(a.holders || []).filter(Boolean).join(', ')}`),
      el('div', {}, el('span', { class: 'org' }, who), ' ', label(t().kind, a.kind)),
      el('div', { class: 'meta' }, [label(t().purpose, a.purpose), a.role ? `${t().role} ${a.role}` : null].filter(Boolean).join(' · '),
        ' · ', el('span', { class: 'result' }, label(t(), a.result))),
      a.categories && a.categories.length ? tags(a.categories) : null,
      a.breakTheGlass ? el('div', { class: 'reason' }, el('strong', {}, t().btg), a.reason ? ` — ${t().reason}: ${a.reason}` : '') : null));
  }
}

function renderConsents(v) {
  const list = $('consents');
  list.replaceChildren();
  if (!v.consents.length) list.append(el('li', { class: 'empty' }, t().none_consents));
  for (const c of v.consents) {
    const withdraw = c.byThisService && c.status === 'active'
      ? el('button', { type: 'button', class: 'button small', 'data-withdraw': c.id }, t().withdraw) : null;
    if (withdraw) withdraw.addEventListener('click', () => act('/patient/api/consents/revoke', { id: c.id }));
    list.append(el('li', { 'data-decision': c.decision, 'data-status': c.status, 'data-issuer': c.issuer.did },
      el('div', {}, el('span', { class: 'org' }, c.decision === 'deny' ? t().deny_label : t().permit_label),
        ' · ', el('span', { class: `status-${c.status}` }, label(t().status, c.status))),
      el('div', { class: 'meta' }, (c.purpose || []).map((p) => label(t().purpose, p)).join(', ')),
      tags(c.categories),
      el('div', { class: 'meta' }, `${t().registered_by}: ${c.byThisService ? t().you : (c.issuer.name || c.issuer.did)} · ${t().method}: ${c.method || ''} · ${when(c.validFrom)}`),
      withdraw));
  }
}

function render(v) {
  renderHolders(v);
  renderAccesses(v);
  renderConsents(v);
}

async function load() {
  $('loading').hidden = false;
  try {
    const r = await fetch('/patient/api/view', { credentials: 'same-origin' });
    if (r.status === 401) {
      $('login').hidden = false;
      $('content').hidden = true;
      $('logout').hidden = true;
      return;
    }
    if (!r.ok) throw new Error(String(r.status));
    lastView = await r.json();
    render(lastView);
    $('login').hidden = true;
    $('content').hidden = false;
    $('logout').hidden = false;
    document.body.dataset.loaded = 'true';
  } catch (e) {
    showError('generic');
  } finally {
    $('loading').hidden = true;
  }
}

async function act(path, body) {
  const r = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!r.ok) {
    showError('generic');
    return;
  }
  const e = $('error');
  e.hidden = true;
  await load();
}

document.addEventListener('DOMContentLoaded', () => {
  applyLanguage();
  const error = params.get('error');
  if (error) showError(error);
  $('lang').addEventListener('click', () => {
    lang = lang === 'nl' ? 'en' : 'nl';
    localStorage.setItem('lang', lang);
    applyLanguage();
  });
  $('logout').addEventListener('click', async () => {
    await fetch('/patient/logout', { method: 'POST', credentials: 'same-origin' });
    lastView = null;
    document.body.dataset.loaded = 'false';
    await load();
  });
  $('object').addEventListener('click', () => {
    if (confirm(t().confirm_object)) act('/patient/api/consents', { decision: 'deny' });
  });
  $('permit').addEventListener('click', () => {
    if (confirm(t().confirm_permit)) act('/patient/api/consents', { decision: 'permit' });
  });
  load();
});
