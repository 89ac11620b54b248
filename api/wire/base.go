package wire

import "net/http"

// BaseURL is the public URL of this server as a client of request r sees
// it: publicURL when it is set, else the scheme (TLS, or a trusted
// X-Forwarded-Proto of http or https) and the request's Host. Every
// absolute URL thumbd answers with (status_url, upload_url, file URLs)
// starts with it.
func BaseURL(r *http.Request, publicURL string) string {
	if publicURL != "" {
		return publicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	}
	return scheme + "://" + r.Host
}
