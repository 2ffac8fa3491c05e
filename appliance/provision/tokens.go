package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"roombox/signaling"
)

// endpointTimeout bounds one token fetch; the room client retries with backoff.
const endpointTimeout = 10 * time.Second

// maxTokenReply bounds a token endpoint's reply.
const maxTokenReply = 64 << 10

// EndpointTokens fetches a fresh LiveKit access token from the fleet's token endpoint for
// every join ("negotiate", as in the Web PubSub client): POST with the device credential as
// a bearer token, reply {"token": JWT}. The room client asks before each join and falls
// back to the server's refreshed token while in the room, so a token never has to outlive
// a connection.
type EndpointTokens struct {
	URL        string
	Credential string
	HTTP       *http.Client
	Now        func() time.Time
	OnToken    func(TokenInfo) // told about each token fetched, for Status
}

var _ signaling.TokenSource = (*EndpointTokens)(nil)

// Token implements signaling.TokenSource.
func (e *EndpointTokens) Token(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, endpointTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, nil)
	if err != nil {
		return "", fmt.Errorf("provision: token endpoint: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+e.Credential)
	req.Header.Set("Accept", "application/json")
	resp, err := e.HTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("provision: token endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenReply+1))
	if err != nil {
		return "", fmt.Errorf("provision: token endpoint %s: read reply: %w", e.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("provision: token endpoint %s: %w", e.URL, &signaling.HTTPError{Status: resp.StatusCode, Reason: fmt.Sprintf("%.200s", body)})
	}
	if len(body) > maxTokenReply {
		return "", fmt.Errorf("provision: token endpoint %s: reply larger than %d bytes", e.URL, maxTokenReply)
	}
	var reply struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		return "", fmt.Errorf("provision: token endpoint %s: reply is not JSON {\"token\": ...}: %w", e.URL, err)
	}
	if reply.Token == "" {
		return "", errors.New("provision: token endpoint " + e.URL + `: reply has no "token"`)
	}
	info, err := ParseAccessToken(reply.Token, e.Now())
	if err != nil {
		return "", fmt.Errorf("provision: token endpoint %s: %w", e.URL, err)
	}
	if e.OnToken != nil {
		e.OnToken(info)
	}
	return reply.Token, nil
}
