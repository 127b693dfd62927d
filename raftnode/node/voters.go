package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/command"
)

// VotersKnowHTTP returns nil when every voter of the current raft
// configuration lists command type typ in command_types of its
// GET /v1/status (sent with the bearer token, when given). A voter that
// cannot be asked, or answers from a release without the field, does not
// know it. This is the check of DESIGN.md "Upgrade rule" before the leader
// proposes a command type that is not ignorable.
func (n *Node) VotersKnowHTTP(ctx context.Context, typ, token string) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("raft configuration: %w", err)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage != raft.Voter {
			continue
		}
		if string(srv.ID) == n.cfg.ID {
			if !slices.Contains(command.KnownTypes(), typ) {
				return fmt.Errorf("this node does not know %s", typ)
			}
			continue
		}
		if err := voterKnows(ctx, client, n.peers[string(srv.ID)], string(srv.ID), typ, token); err != nil {
			return err
		}
	}
	return nil
}

func voterKnows(ctx context.Context, client *http.Client, p Peer, id, typ, token string) error {
	if p.HTTPAddr == "" {
		return fmt.Errorf("voter %s has no HTTP address to ask", id)
	}
	base := p.HTTPAddr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/v1/status", nil)
	if err != nil {
		return fmt.Errorf("ask voter %s: %w", id, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("ask voter %s: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ask voter %s: status %d", id, resp.StatusCode)
	}
	var st struct {
		CommandTypes []string `json:"command_types"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return fmt.Errorf("ask voter %s: decode status: %w", id, err)
	}
	if !slices.Contains(st.CommandTypes, typ) {
		return fmt.Errorf("voter %s does not know %s (knows %v)", id, typ, st.CommandTypes)
	}
	return nil
}
