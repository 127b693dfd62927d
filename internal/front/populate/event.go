package populate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// ErrUnsupportedEvent is an invocation that is neither a Scheduler input
// nor a classic "Scheduled Event".
var ErrUnsupportedEvent = errors.New("unsupported event")

// Master is a cluster's master as the node API's populate takes it.
type Master struct {
	Cluster string `json:"cluster"`
	Host    string `json:"host"`
	Port    int    `json:"port"`
	IPv4    string `json:"ipv4,omitempty"`
	IPv6    string `json:"ipv6,omitempty"`
}

// Input is what an EventBridge Scheduler schedule (SAM ScheduleV2)
// delivers: its configured Input, in which Scheduler fills the context
// attributes <aws.scheduler.schedule-arn> and
// <aws.scheduler.scheduled-time>. Both stay the same when Scheduler or
// Lambda retries the invocation, so they make a stable idempotency key.
type Input struct {
	// Masters, when given, are populated instead of asking orchestrator.
	Masters       []Master `json:"masters"`
	ScheduleARN   string   `json:"schedule_arn"`
	ScheduledTime string   `json:"scheduled_time"`
}

// ScheduledEventType is the detail-type of an EventBridge rule's schedule.
const ScheduledEventType = "Scheduled Event"

// trigger is an invocation, read.
type trigger struct {
	// masters from the event; nil means "ask the configured source".
	masters []Master
	// key identifies the scheduled run for idempotency keys.
	key string
}

// parseEvent reads either trigger. A classic EventBridge rule delivers
// events.CloudWatchEvent with detail-type "Scheduled Event", whose id and
// time are kept across retries; its detail is always empty, so its
// masters come from the configured source.
func parseEvent(ctx context.Context, raw json.RawMessage) (trigger, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return trigger{}, fmt.Errorf("%w: not a JSON object: %v", ErrUnsupportedEvent, err)
	}
	if _, ok := probe["detail-type"]; ok {
		var ev events.CloudWatchEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			return trigger{}, fmt.Errorf("%w: EventBridge event: %v", ErrUnsupportedEvent, err)
		}
		if ev.DetailType != ScheduledEventType {
			return trigger{}, fmt.Errorf("%w: detail-type %q, want %q", ErrUnsupportedEvent, ev.DetailType, ScheduledEventType)
		}
		return trigger{key: "rule\x00" + ev.ID + "\x00" + ev.Time.UTC().Format(time.RFC3339)}, nil
	}
	var in Input
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return trigger{}, fmt.Errorf("%w: schedule input must be {\"masters\":[...],\"schedule_arn\":...,\"scheduled_time\":...}: %v", ErrUnsupportedEvent, err)
	}
	t := trigger{masters: in.Masters}
	switch {
	case in.ScheduleARN != "" || in.ScheduledTime != "":
		t.key = "schedule\x00" + in.ScheduleARN + "\x00" + in.ScheduledTime
	default:
		// No context attributes in the input: the invocation's own id.
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			t.key = "invocation\x00" + lc.AwsRequestID
		}
	}
	return t, nil
}
