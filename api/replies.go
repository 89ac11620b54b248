package api

import "github.com/thumbd/thumbd/api/wire"

// The reply of every method carries "error": 0 on success.
type tokenReply struct {
	Error  int    `json:"error"`
	Token  string `json:"token"`
	Expire string `json:"expire"`
}

type createTaskReply struct {
	Error     int    `json:"error"`
	TaskToken string `json:"task_token"`
	UploadURL string `json:"upload_url"`
}

type startReply struct {
	Error     int    `json:"error"`
	StatusURL string `json:"status_url"`
}

type statusReply struct {
	Error    int                     `json:"error"`
	Statuses map[string]*wire.Status `json:"statuses"`
}

// templatesReply answers /v1/request_templates.
type templatesReply struct {
	Error     int   `json:"error"`
	Templates []any `json:"templates"`
}

type errorReply struct {
	Error   int    `json:"error"`
	Message string `json:"message"`
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
