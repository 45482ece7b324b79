package controllers

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// secretCache keeps the contents of the Secrets Ingesters reference, with the
// resourceVersion they were read at. The operator watches only Secrets' metadata; a
// reconcile compares the resourceVersion the metadata cache holds with the one of the
// contents kept here, and reads the Secret from the API server only when it changed, so
// that resyncs of Ingesters with Secrets cost the API server nothing. Only referenced
// Secrets are kept, in memory only, and dropped when no reconcile asked for them for a while.
type secretCache struct {
	// metadata reads the manager's cache of Secret metadata; contents reads the API server.
	metadata, contents client.Reader

	mu        sync.Mutex
	entries   map[types.NamespacedName]*cachedSecret
	lastPrune time.Time
}

type cachedSecret struct {
	secret   *corev1.Secret
	lastUsed time.Time
}

// secretIdle is how long a Secret no reconcile asked for stays cached.
const secretIdle = 10 * time.Minute

func newSecretCache(metadata, contents client.Reader) *secretCache {
	return &secretCache{metadata: metadata, contents: contents, entries: map[types.NamespacedName]*cachedSecret{}}
}

// get returns the Secret, read from the API server only when the metadata cache shows a
// resourceVersion other than the one kept. The Secret returned is shared: read it only.
func (c *secretCache) get(ctx context.Context, key types.NamespacedName) (*corev1.Secret, error) {
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := c.metadata.Get(ctx, key, meta); err != nil {
		if client.IgnoreNotFound(err) == nil {
			c.mu.Lock()
			delete(c.entries, key)
			c.mu.Unlock()
		}
		return nil, err
	}
	now := time.Now()
	c.mu.Lock()
	if now.Sub(c.lastPrune) > secretIdle/10 { // not a scan of every entry on every read
		c.lastPrune = now
		for k, e := range c.entries {
			if now.Sub(e.lastUsed) > secretIdle {
				delete(c.entries, k)
			}
		}
	}
	if e, ok := c.entries[key]; ok && e.secret.ResourceVersion == meta.ResourceVersion {
		e.lastUsed = now
		c.mu.Unlock()
		return e.secret, nil
	}
	c.mu.Unlock()

	s := &corev1.Secret{}
	if err := c.contents.Get(ctx, key, s); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.entries[key] = &cachedSecret{secret: s, lastUsed: now}
	c.mu.Unlock()
	return s, nil
}
