package jobs

import (
	"encoding/json"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/protobuf/types/known/structpb"
)

func toStoreEvent(ev *croupierv1.JobEvent) (store.Event, error) {
	var data []byte
	if ev.GetData() != nil {
		b, err := json.Marshal(ev.GetData().AsMap())
		if err != nil {
			return store.Event{}, err
		}
		data = b
	}
	return store.Event{Seq: ev.GetSeq(), Type: int32(ev.GetType()), Message: ev.GetMessage(), Progress: ev.GetProgress(),
		TimestampMs: ev.GetTimestamp(), Data: data}, nil
}

func toProtoEvent(jobID string, e store.Event) *croupierv1.JobEvent {
	return &croupierv1.JobEvent{JobId: jobID, Seq: e.Seq, Type: croupierv1.EventType(e.Type), Message: e.Message,
		Progress: e.Progress, Timestamp: e.TimestampMs, Data: jsonStruct(e.Data)}
}

func jsonStruct(b []byte) *structpb.Struct {
	if len(b) == 0 {
		return nil
	}
	s := &structpb.Struct{}
	if err := s.UnmarshalJSON(b); err != nil {
		return nil
	}
	return s
}

func toProtoJob(j *store.Job) *croupierv1.Job {
	ms := func(t interface {
		UnixMilli() int64
		IsZero() bool
	}) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixMilli()
	}
	return &croupierv1.Job{
		JobId: j.ID, GameId: j.GameID, Env: j.Env, FunctionId: j.FunctionID, Status: j.Status, Instance: j.Instance,
		CreatedAt: ms(j.CreatedAt), StartedAt: ms(j.StartedAt), EndedAt: ms(j.EndedAt), LastSeq: j.LastSeq,
		Progress: j.Progress, Result: jsonStruct(j.Result), Error: j.Error, ErrorCode: j.ErrorCode,
		Actor: j.Actor, IdempotencyKey: j.IdempotencyKey,
	}
}

// terminalStatus maps a terminal event type to the job status it sets.
func terminalStatus(t croupierv1.EventType) (string, bool) {
	switch t {
	case croupierv1.EventType_DONE:
		return store.JobCompleted, true
	case croupierv1.EventType_ERROR:
		return store.JobFailed, true
	case croupierv1.EventType_CANCELED:
		return store.JobCanceled, true
	}
	return "", false
}
