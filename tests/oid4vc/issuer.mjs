// An OpenID4VCI 1.0 credential issuer outside knoop, built on the OpenWallet Foundation's
// oid4vc-ts (@openid4vc/openid4vci's Openid4vciIssuer, @openid4vc/oauth2's
// Oauth2AuthorizationServer): it offers one CareOrganizationCredential (a VC 1.1 JWT,
// `jwt_vc_json`, signed ES256 by its own did:jwk) with a pre-authorized code and a transaction
// code, and binds it to a did:web holder, which it resolves itself over HTTPS.
//
//   node issuer.mjs <TLS certificate PEM> <TLS key PEM> '<subject claims JSON>'
//
// Serves HTTPS on localhost (a free port) and prints one JSON line on stdout:
// {"issuer": ..., "offer": ..., "tx_code": ..., "did": ...}; then logs each request on stderr
// and exits after issuing (or when killed). Trust for other TLS certificates comes from
// NODE_EXTRA_CA_CERTS.
import { createServer } from 'node:https'
import { readFileSync } from 'node:fs'
import { webcrypto, createHash, randomBytes, createPublicKey, verify as verifySig, ECDH } from 'node:crypto'
import { Openid4vciIssuer } from '@openid4vc/openid4vci'
import { Oauth2AuthorizationServer, clientAuthenticationNone, preAuthorizedCodeGrantIdentifier } from '@openid4vc/oauth2'

const [certFile, keyFile, claimsJson] = process.argv.slice(2)
const claims = JSON.parse(claimsJson)
const b64u = (b) => Buffer.from(b).toString('base64url')
const log = (m) => process.stderr.write(`issuer: ${m}\n`)

const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
const { kty, crv, x, y } = await webcrypto.subtle.exportKey('jwk', keys.publicKey)
const publicJwk = { kty, crv, x, y }
const did = `did:jwk:${b64u(JSON.stringify(publicJwk))}`
const sign = async (header, payload) => {
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`
  const sig = await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, keys.privateKey, Buffer.from(input))
  return `${input}.${b64u(sig)}`
}

// A did:web document's key, as a KeyObject: publicKeyJwk, or a Multikey (P-256, Ed25519).
const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
function base58(s) {
  let n = 0n
  for (const c of s) n = n * 58n + BigInt(BASE58.indexOf(c))
  const hex = n.toString(16)
  const bytes = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex')
  const zeros = s.match(/^1*/)[0].length
  return Buffer.concat([Buffer.alloc(zeros), bytes])
}
function keyOf(method) {
  if (method.publicKeyJwk) return createPublicKey({ key: method.publicKeyJwk, format: 'jwk' })
  const raw = base58(method.publicKeyMultibase.slice(1))
  if (raw[0] === 0x80 && raw[1] === 0x24) {
    const point = ECDH.convertKey(raw.subarray(2), 'prime256v1', undefined, undefined, 'uncompressed')
    return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64u(point.subarray(1, 33)), y: b64u(point.subarray(33)) }, format: 'jwk' })
  }
  if (raw[0] === 0xed && raw[1] === 0x01) {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64u(raw.subarray(2)) }, format: 'jwk' })
  }
  throw new Error('unsupported key type')
}
async function resolveWeb(didUrl) {
  const [id] = didUrl.split('#')
  const parts = id.slice('did:web:'.length).split(':').map(decodeURIComponent)
  const url = parts.length === 1 ? `https://${parts[0]}/.well-known/did.json` : `https://${parts.join('/')}/did.json`
  const doc = await (await fetch(url)).json()
  const method = (doc.verificationMethod ?? []).find((m) => m.id === didUrl || `${id}${m.id}` === didUrl)
  const authn = (doc.authentication ?? []).some((r) => (typeof r === 'string' ? r : r.id) === method?.id)
  if (!method || !authn) throw new Error(`${didUrl} is not an authentication key of ${id}`)
  return keyOf(method)
}

const callbacks = {
  fetch,
  hash: (data, alg) => new Uint8Array(createHash(alg.replace('-', '').toLowerCase()).update(data).digest()),
  generateRandom: (n) => new Uint8Array(randomBytes(n)),
  clientAuthentication: clientAuthenticationNone({ clientId: 'any' }),
  signJwt: async (_signer, { header, payload }) => ({ jwt: await sign(header, payload), signerJwk: publicJwk }),
  verifyJwt: async (signer, { compact, header }) => {
    if (signer.method !== 'did' || !signer.didUrl.startsWith('did:web:')) return { verified: false }
    const key = await resolveWeb(signer.didUrl)
    const [h, p, s] = compact.split('.')
    const alg = header.alg === 'EdDSA' ? null : 'sha256'
    const ok = verifySig(alg, Buffer.from(`${h}.${p}`), alg ? { key, dsaEncoding: 'ieee-p1363' } : key, Buffer.from(s, 'base64url'))
    return ok ? { verified: true, signerJwk: key.export({ format: 'jwk' }) } : { verified: false }
  },
}
const issuer = new Openid4vciIssuer({ callbacks })
const server = new Oauth2AuthorizationServer({ callbacks })

const preAuthorizedCode = b64u(randomBytes(32))
const txCode = String(randomBytes(4).readUInt32BE() % 1000000).padStart(6, '0')
const nonces = new Set()
const tokens = new Set()

const https = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) })
await new Promise((r) => https.listen(0, '127.0.0.1', r))
const base = `https://localhost:${https.address().port}`
const configurationId = 'CareOrganizationCredential_jwt_vc_json'
const credentialIssuer = issuer.createCredentialIssuerMetadata({
  credential_issuer: base,
  credential_endpoint: `${base}/credential`,
  nonce_endpoint: `${base}/nonce`,
  credential_configurations_supported: {
    [configurationId]: {
      format: 'jwt_vc_json',
      cryptographic_binding_methods_supported: ['did:web'],
      credential_signing_alg_values_supported: ['ES256'],
      proof_types_supported: { jwt: { proof_signing_alg_values_supported: ['ES256', 'EdDSA'] } },
      credential_definition: { type: ['VerifiableCredential', 'CareOrganizationCredential'] },
      credential_metadata: { display: [{ name: 'Zorgorganisatie', locale: 'nl-NL' }] },
    },
  },
})
const authorizationServer = server.createAuthorizationServerMetadata({
  issuer: base,
  token_endpoint: `${base}/token`,
  'pre-authorized_grant_anonymous_access_supported': true,
})
const issuerMetadata = {
  credentialIssuer,
  authorizationServers: [authorizationServer],
  originalDraftVersion: 'V1',
  knownCredentialConfigurations: issuer.getKnownCredentialConfigurationsSupported(credentialIssuer),
}
const { credentialOffer: offer } = await issuer.createCredentialOffer({
  issuerMetadata,
  credentialConfigurationIds: [configurationId],
  grants: { [preAuthorizedCodeGrantIdentifier]: { 'pre-authorized_code': preAuthorizedCode, tx_code: { input_mode: 'numeric', length: 6 } } },
})

const send = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
  res.end(JSON.stringify(body))
}
const readBody = (req) => new Promise((r) => { let d = ''; req.on('data', (c) => { d += c }); req.on('end', () => r(d)) })

https.on('request', async (req, res) => {
  const url = new URL(req.url, base)
  log(`${req.method} ${url.pathname}`)
  try {
    if (req.method === 'GET' && url.pathname === '/.well-known/openid-credential-issuer') return send(res, 200, credentialIssuer)
    if (req.method === 'GET' && url.pathname === '/.well-known/oauth-authorization-server') return send(res, 200, authorizationServer)
    if (req.method === 'POST' && url.pathname === '/token') {
      const form = Object.fromEntries(new URLSearchParams(await readBody(req)))
      const request = { method: 'POST', url: `${base}/token`, headers: new Headers(req.headers) }
      const parsed = server.parseAccessTokenRequest({ request, accessTokenRequest: form })
      await server.verifyPreAuthorizedCodeAccessTokenRequest({
        authorizationServerMetadata: authorizationServer,
        grant: parsed.grant,
        accessTokenRequest: parsed.accessTokenRequest,
        request,
        expectedPreAuthorizedCode: preAuthorizedCode,
        expectedTxCode: txCode,
      })
      const response = await server.createAccessTokenResponse({
        audience: `${base}/credential`,
        authorizationServer: base,
        expiresInSeconds: 300,
        subject: 'holder',
        signer: { method: 'jwk', publicJwk, alg: 'ES256' },
      })
      tokens.add(response.access_token)
      return send(res, 200, response)
    }
    if (req.method === 'POST' && url.pathname === '/nonce') {
      const c_nonce = b64u(randomBytes(16))
      nonces.add(c_nonce)
      return send(res, 200, { c_nonce })
    }
    if (req.method === 'POST' && url.pathname === '/credential') {
      const token = (req.headers.authorization ?? '').replace(/^Bearer /i, '')
      if (!tokens.has(token)) return send(res, 401, { error: 'invalid_token' })
      const parsed = issuer.parseCredentialRequest({ issuerMetadata, credentialRequest: JSON.parse(await readBody(req)) })
      const jwt = parsed.proofs?.jwt?.[0]
      const nonce = JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url')).nonce
      if (!nonces.delete(nonce)) return send(res, 400, { error: 'invalid_nonce' })
      const { signer } = await issuer.verifyCredentialRequestJwtProof({ issuerMetadata, jwt, expectedNonce: nonce })
      const holder = signer.didUrl.split('#')[0]
      const now = Math.floor(Date.now() / 1000)
      const credential = await sign({ alg: 'ES256', typ: 'JWT', kid: `${did}#0` }, {
        iss: did,
        sub: holder,
        nbf: now,
        iat: now,
        jti: `urn:uuid:${webcrypto.randomUUID()}`,
        vc: {
          // The type's terms are defined by knoop's context (specs/credentials.md §2).
          '@context': ['https://www.w3.org/2018/credentials/v1', 'https://w3id.org/knoop/credentials/v1'],
          type: ['VerifiableCredential', 'CareOrganizationCredential'],
          credentialSubject: { id: holder, ...claims },
        },
      })
      tokens.delete(token)
      send(res, 200, issuer.createCredentialResponse({ credentialRequest: parsed, credentials: [{ credential }] }))
      log(`issued to ${holder}`)
      return
    }
    send(res, 404, { error: 'not_found' })
  } catch (e) {
    log(`refused: ${e.message}`)
    send(res, 400, { error: e.error ?? 'invalid_request', error_description: e.message })
  }
})

process.stdout.write(`${JSON.stringify({ issuer: base, offer, tx_code: txCode, did })}\n`)
