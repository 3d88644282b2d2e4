package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strconv"
	"strings"
)

// Headers of a webhook request. The signature and timestamp headers are the
// ones Syncline's failure alerts carry, with the same "sha256=<hex>" form, so
// a sender that checks Syncline's alerts signs to it with the same code.
const (
	HeaderSignature = "X-Syncline-Signature" // "sha256=<hex>" (auth hmac)
	HeaderTimestamp = "X-Syncline-Timestamp" // Unix seconds (auth hmac)
	HeaderToken     = "X-Syncline-Token"     // the secret (auth token), or Authorization: Bearer
)

// signaturePrefix starts every signature.
const signaturePrefix = "sha256="

// Sign returns the X-Syncline-Signature of a request: "sha256=" and the hex
// HMAC-SHA256, under the endpoint's secret, of the delivery id, ".", the
// timestamp (Unix seconds, as sent in X-Syncline-Timestamp), "." and the raw
// body.
//
// An alert's signature covers its body alone, because the alert's body
// holds its id and the time it was sent. A sender's body holds neither of
// ours, so they are signed with it: a timestamp or delivery id that a replay
// changed would otherwise pass unnoticed. A delivery id has no '.' (Read
// refuses one), so the signed text splits only one way.
func Sign(secret []byte, delivery string, timestamp int64, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(secret, delivery, strconv.FormatInt(timestamp, 10), body))
}

func mac(secret []byte, delivery, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(delivery))
	m.Write([]byte{'.'})
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// signatureMatches reports whether header is the signature of the request
// under secret, in constant time.
func signatureMatches(header string, secret []byte, delivery, timestamp string, body []byte) bool {
	got, err := hex.DecodeString(strings.TrimPrefix(header, signaturePrefix))
	if err != nil {
		return false
	}
	return hmac.Equal(got, mac(secret, delivery, timestamp, body))
}

// tokenMatches compares a token with the secret in constant time, their
// lengths included: both are hashed first.
func tokenMatches(token, secret string) bool {
	a, b := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
