package gateway

import (
	"context"

	"github.com/croupier/croupier/api/netsvr"
)

// One-way commands: the gateway does not answer them.

// SingleCast sends data to one client.
func (c *Client) SingleCast(uniqID string, data []byte) error {
	return c.send(netsvr.Cmd_SingleCast, &netsvr.SingleCast{UniqId: uniqID, Data: data})
}

// SingleCastBulk sends data[i] to uniqIDs[i].
func (c *Client) SingleCastBulk(uniqIDs []string, data [][]byte) error {
	return c.send(netsvr.Cmd_SingleCastBulk, &netsvr.SingleCastBulk{UniqIds: uniqIDs, Data: data})
}

// Multicast sends data to each of uniqIDs.
func (c *Client) Multicast(uniqIDs []string, data []byte) error {
	return c.send(netsvr.Cmd_Multicast, &netsvr.Multicast{UniqIds: uniqIDs, Data: data})
}

// Broadcast sends data to every client of the gateway.
func (c *Client) Broadcast(data []byte) error {
	return c.send(netsvr.Cmd_Broadcast, &netsvr.Broadcast{Data: data})
}

// TopicSubscribe subscribes a client to topics, then sends it data (if any).
func (c *Client) TopicSubscribe(uniqID string, topics []string, data []byte) error {
	return c.send(netsvr.Cmd_TopicSubscribe, &netsvr.TopicSubscribe{UniqId: uniqID, Topics: topics, Data: data})
}

// TopicUnsubscribe removes topics from a client, then sends it data (if any).
func (c *Client) TopicUnsubscribe(uniqID string, topics []string, data []byte) error {
	return c.send(netsvr.Cmd_TopicUnsubscribe, &netsvr.TopicUnsubscribe{UniqId: uniqID, Topics: topics, Data: data})
}

// TopicDelete removes topics from every member and sends them data (if any).
func (c *Client) TopicDelete(topics []string, data []byte) error {
	return c.send(netsvr.Cmd_TopicDelete, &netsvr.TopicDelete{Topics: topics, Data: data})
}

// TopicPublish sends data once to every client subscribed to any of topics.
func (c *Client) TopicPublish(topics []string, data []byte) error {
	return c.send(netsvr.Cmd_TopicPublish, &netsvr.TopicPublish{Topics: topics, Data: data})
}

// TopicPublishBulk sends data[i] to the members of topics[i].
func (c *Client) TopicPublishBulk(topics []string, data [][]byte) error {
	return c.send(netsvr.Cmd_TopicPublishBulk, &netsvr.TopicPublishBulk{Topics: topics, Data: data})
}

// ConnInfoUpdate renames a client, sets its session and adds topics.
func (c *Client) ConnInfoUpdate(m *netsvr.ConnInfoUpdate) error {
	return c.send(netsvr.Cmd_ConnInfoUpdate, m)
}

// ConnInfoDelete clears what its flags say, then sends data.
func (c *Client) ConnInfoDelete(m *netsvr.ConnInfoDelete) error {
	return c.send(netsvr.Cmd_ConnInfoDelete, m)
}

// ForceOffline closes clients: at once without data, 3 s after data.
func (c *Client) ForceOffline(uniqIDs []string, data []byte) error {
	return c.send(netsvr.Cmd_ForceOffline, &netsvr.ForceOffline{UniqIds: uniqIDs, Data: data})
}

// ForceOfflineGuest closes those of uniqIDs whose session is empty after
// delaySeconds.
func (c *Client) ForceOfflineGuest(uniqIDs []string, delaySeconds int32, data []byte) error {
	return c.send(netsvr.Cmd_ForceOfflineGuest, &netsvr.ForceOfflineGuest{UniqIds: uniqIDs, Delay: delaySeconds, Data: data})
}

// Request/response commands.

// CheckOnline returns those of uniqIDs that are online.
func (c *Client) CheckOnline(ctx context.Context, uniqIDs []string) ([]string, error) {
	resp := &netsvr.CheckOnlineResp{}
	err := c.call(ctx, netsvr.Cmd_CheckOnline, &netsvr.CheckOnlineReq{UniqIds: uniqIDs}, resp)
	return resp.UniqIds, err
}

// UniqIDList returns every online uniqId.
func (c *Client) UniqIDList(ctx context.Context) (*netsvr.UniqIdListResp, error) {
	resp := &netsvr.UniqIdListResp{}
	return resp, c.call(ctx, netsvr.Cmd_UniqIdList, nil, resp)
}

// UniqIDCount counts the online connections.
func (c *Client) UniqIDCount(ctx context.Context) (*netsvr.UniqIdCountResp, error) {
	resp := &netsvr.UniqIdCountResp{}
	return resp, c.call(ctx, netsvr.Cmd_UniqIdCount, nil, resp)
}

// TopicCount counts the topics that have members.
func (c *Client) TopicCount(ctx context.Context) (*netsvr.TopicCountResp, error) {
	resp := &netsvr.TopicCountResp{}
	return resp, c.call(ctx, netsvr.Cmd_TopicCount, nil, resp)
}

// TopicList lists the topics that have members.
func (c *Client) TopicList(ctx context.Context) (*netsvr.TopicListResp, error) {
	resp := &netsvr.TopicListResp{}
	return resp, c.call(ctx, netsvr.Cmd_TopicList, nil, resp)
}

// TopicUniqIDList lists the members of topics.
func (c *Client) TopicUniqIDList(ctx context.Context, topics []string) (*netsvr.TopicUniqIdListResp, error) {
	resp := &netsvr.TopicUniqIdListResp{}
	return resp, c.call(ctx, netsvr.Cmd_TopicUniqIdList, &netsvr.TopicUniqIdListReq{Topics: topics}, resp)
}

// TopicUniqIDCount counts the members of topics (of every topic with all).
func (c *Client) TopicUniqIDCount(ctx context.Context, topics []string, all bool) (*netsvr.TopicUniqIdCountResp, error) {
	resp := &netsvr.TopicUniqIdCountResp{}
	return resp, c.call(ctx, netsvr.Cmd_TopicUniqIdCount, &netsvr.TopicUniqIdCountReq{Topics: topics, CountAll: all}, resp)
}

// ConnInfo returns the session and topics of online uniqIDs.
func (c *Client) ConnInfo(ctx context.Context, uniqIDs []string) (*netsvr.ConnInfoResp, error) {
	resp := &netsvr.ConnInfoResp{}
	return resp, c.call(ctx, netsvr.Cmd_ConnInfo, &netsvr.ConnInfoReq{UniqIds: uniqIDs}, resp)
}

// Unregister stops client messages reaching this process; the connection
// stays open for other commands. Run re-registers only after a reconnect.
func (c *Client) Unregister(ctx context.Context) error {
	return c.call(ctx, netsvr.Cmd_Unregister, &netsvr.UnRegisterReq{WorkerId: c.cfg.WorkerID, RegisterId: c.RegisterID()}, &netsvr.UnRegisterResp{})
}

// Metrics returns the gateway's configured Metrics items.
func (c *Client) Metrics(ctx context.Context) (*netsvr.MetricsResp, error) {
	resp := &netsvr.MetricsResp{}
	return resp, c.call(ctx, netsvr.Cmd_Metrics, nil, resp)
}

// Limit updates the concurrency of named Limit groups (unknown names and
// values < 1 are ignored) and returns the configuration in force; call it
// with no items to read the configuration.
func (c *Client) Limit(ctx context.Context, items ...*netsvr.LimitReq_Item) (*netsvr.LimitResp, error) {
	resp := &netsvr.LimitResp{}
	return resp, c.call(ctx, netsvr.Cmd_Limit, &netsvr.LimitReq{Items: items}, resp)
}

// CustomUniqIDToken returns a one-time token a client presents, with the
// uniqId it wants, in its connection query.
func (c *Client) CustomUniqIDToken(ctx context.Context) (*netsvr.ConnOpenCustomUniqIdTokenResp, error) {
	resp := &netsvr.ConnOpenCustomUniqIdTokenResp{}
	return resp, c.call(ctx, netsvr.Cmd_ConnOpenCustomUniqIdToken, nil, resp)
}
