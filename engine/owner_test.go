package engine

import (
	"context"
	"testing"
)

// TestTaskOwner: a task belongs to the API key its access token was made
// with, and the store lists each key's tasks apart.
func TestTaskOwner(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	e := New(Config{Store: store})
	keys := []string{"first-key-0000", "second-key-1111"}
	made := map[string][]string{}
	for _, k := range keys {
		access, _, err := e.NewSession(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			task, err := e.CreateTask(ctx, access)
			if err != nil {
				t.Fatal(err)
			}
			made[k] = append(made[k], task)
		}
	}
	if KeyOwner(keys[0]) == KeyOwner(keys[1]) || len(KeyOwner(keys[0])) != 16 {
		t.Fatalf("KeyOwner: %q and %q", KeyOwner(keys[0]), KeyOwner(keys[1]))
	}
	for _, k := range keys {
		recs, err := store.Tasks(ctx, TaskFilter{Owner: KeyOwner(k)})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 {
			t.Fatalf("%s: %d tasks, want 2", k, len(recs))
		}
		for _, r := range recs {
			if r.Token != made[k][0] && r.Token != made[k][1] {
				t.Errorf("%s lists %s, a task of another key", k, r.Token)
			}
			if r.Owner != KeyOwner(k) {
				t.Errorf("owner %q, want %q", r.Owner, KeyOwner(k))
			}
		}
	}
	all, err := store.Tasks(ctx, TaskFilter{Limit: 3})
	if err != nil || len(all) != 3 {
		t.Errorf("Tasks(limit 3) = %d tasks, %v", len(all), err)
	}
}
