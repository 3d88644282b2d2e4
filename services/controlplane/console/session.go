package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"

	"github.com/syncline/syncline/pkg/secret"
)

// cookieName is the session cookie's name.
const cookieName = "syncline_session"

// sessionTTL is how long a sign-in lasts.
const sessionTTL = 12 * time.Hour

// sessionBinding is what a session cookie is sealed to.
const sessionBinding = "console/session"

// session is what the sealed cookie carries: the token the console calls the APIs with for
// its holder, and the holder's CSRF token, which every form that changes something sends
// back.
type session struct {
	Token   string    `json:"t"`
	CSRF    string    `json:"c"`
	Expires time.Time `json:"e"`
}

// sessions seal sessions into cookies with the platform's key: a cookie is opaque to its
// holder, cannot be forged, and is good on every replica that has the key.
type sessions struct {
	box *secret.Box
	now func() time.Time
}

// start makes the session of token and sets its cookie.
func (s sessions) start(w http.ResponseWriter, token string) error {
	csrf := make([]byte, 18)
	if _, err := rand.Read(csrf); err != nil {
		return err
	}
	sess := session{Token: token, CSRF: base64.RawURLEncoding.EncodeToString(csrf), Expires: s.now().Add(sessionTTL)}
	b, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	sealed, err := s.box.Seal(sessionBinding, b)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: sealed, Path: "/", Expires: sess.Expires,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	return nil
}

// end removes the session cookie.
func (s sessions) end(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// of returns the request's session; ok is false without a good, unexpired one.
func (s sessions) of(r *http.Request) (session, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return session{}, false
	}
	b, err := s.box.Open(sessionBinding, c.Value)
	if err != nil {
		return session{}, false
	}
	var sess session
	if err := json.Unmarshal(b, &sess); err != nil || sess.Token == "" || !s.now().Before(sess.Expires) {
		return session{}, false
	}
	return sess, true
}

// csrfOK reports whether a form that changes something was sent by the console's own page:
// it carries the session's CSRF token, and, when the browser says where it comes from, it
// comes from this host.
func csrfOK(r *http.Request, sess session) bool {
	if origin := r.Header.Get("Origin"); origin != "" && origin != "null" {
		if origin != "https://"+r.Host && origin != "http://"+r.Host {
			return false
		}
	}
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) == 1
}
