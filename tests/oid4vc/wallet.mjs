// An OpenID4VCI 1.0 wallet outside knoop: the OpenWallet Foundation's oid4vc-ts client
// (@openid4vc/openid4vci) receives the credential a knoop credential issuer offers, with the
// pre-authorized code flow, for a did:jwk of a fresh P-256 key (WebCrypto).
//
//   node wallet.mjs <offer URL> [tx_code]
//
// Prints {"did": ..., "credential": ..., "format": ..., "issuer_metadata": {...}} on stdout.
// Trust for the issuer's TLS certificate comes from NODE_EXTRA_CA_CERTS.
import { webcrypto, createHash, randomBytes } from 'node:crypto'
import { Openid4vciClient } from '@openid4vc/openid4vci'
import { clientAuthenticationAnonymous } from '@openid4vc/oauth2'

const [offerUrl, txCode] = process.argv.slice(2)
const b64u = (b) => Buffer.from(b).toString('base64url')

const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
const { kty, crv, x, y } = await webcrypto.subtle.exportKey('jwk', keys.publicKey)
const publicJwk = { kty, crv, x, y }
const did = `did:jwk:${b64u(JSON.stringify(publicJwk))}`

const client = new Openid4vciClient({
  callbacks: {
    fetch,
    hash: (data, alg) => new Uint8Array(createHash(alg.replace('-', '').toLowerCase()).update(data).digest()),
    generateRandom: (n) => new Uint8Array(randomBytes(n)),
    clientAuthentication: clientAuthenticationAnonymous(),
    signJwt: async (_signer, { header, payload }) => {
      const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`
      // WebCrypto's ECDSA signature is r || s, as JWS (RFC 7518 §3.4) wants it.
      const sig = await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, keys.privateKey, Buffer.from(input))
      return { jwt: `${input}.${b64u(sig)}`, signerJwk: publicJwk }
    },
  },
})

const credentialOffer = await client.resolveCredentialOffer(offerUrl)
const issuerMetadata = await client.resolveIssuerMetadata(credentialOffer.credential_issuer)
const { accessTokenResponse } = await client.retrievePreAuthorizedCodeAccessTokenFromOffer({
  credentialOffer,
  issuerMetadata,
  txCode,
})
const credentialConfigurationId = credentialOffer.credential_configuration_ids[0]
const { c_nonce } = await client.requestNonce({ issuerMetadata })
const { jwt: proof } = await client.createCredentialRequestJwtProof({
  issuerMetadata,
  credentialConfigurationId,
  nonce: c_nonce,
  signer: { method: 'did', didUrl: `${did}#0`, alg: 'ES256' },
})
const response = await client.retrieveCredentials({
  issuerMetadata,
  accessToken: accessTokenResponse.access_token,
  credentialConfigurationId,
  proofs: { jwt: [proof] },
})
if (!response.ok) {
  console.error(JSON.stringify(response.credentialErrorResponseResult ?? response, null, 1))
  process.exit(1)
}
const credential = response.credentialResponse.credentials[0].credential
process.stdout.write(JSON.stringify({
  did,
  credential,
  format: issuerMetadata.credentialIssuer.credential_configurations_supported[credentialConfigurationId].format,
  version: issuerMetadata.originalDraftVersion,
  token_type: accessTokenResponse.token_type,
}))
