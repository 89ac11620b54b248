// Package storage says where files go and where they are: the Destination
// a user gives, the Location a stored file has, s3:// URLs, and Local,
// which keeps files under thumbd's data directory. Uploading to
// S3-compatible servers is package s3store's; this package needs no
// network, so the engine can use its types without net/http.
//
// Secrets never appear in an error message or a log line.
package storage

import (
	"io"
	"io/fs"
)

// Destination is one place a file is uploaded to, as the user gave it.
type Destination struct {
	// URL is the full object URL: s3://host[:port]/bucket/key.
	URL          string
	Key          string // access key id; empty: the default AWS credential chain
	Secret       string // secret access key
	Permissions  string // canned ACL, sent as x-amz-acl; empty: none sent
	StorageClass string
	CacheControl string
}

// Location says where a stored file is.
type Location struct {
	// URL is the destination URL as the user gave it (s3://…); empty for a
	// file kept by Local, whose public URL the API builds from Key.
	URL    string
	Type   string // "custom_s3" or "local"
	Scheme string // "https" or "http" for S3; empty for local
	Host   string // host without port
	Port   int    // 0 when the URL named none
	Bucket string
	Key    string // object key, or the path under Local's directory
}

// File is a kept file opened for reading; *os.File is one.
type File interface {
	io.ReadSeekCloser
	Stat() (fs.FileInfo, error)
}
