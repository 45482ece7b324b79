package controllers

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spanflowv1alpha1 "github.com/spanflow/spanflow/api/v1alpha1"
)

const manyIngesters = 500

// BenchmarkManyIngesters creates 500 Ingesters in the envtest API server and measures how
// long the manager takes to bring all of them to Ready, playing the Deployment controller
// (which envtest lacks) by marking each Deployment rolled out. It reports Ingesters and
// reconciles per second and the manager's heap. It fails if any Ingester does not become
// Ready, but sets no time limit.
func BenchmarkManyIngesters(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		ns := newNamespaceB(b)
		var heapBefore runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&heapBefore)
		reconcilesBefore := reconcileCount(b)
		start := time.Now()

		stop := make(chan struct{})
		var rollouts sync.WaitGroup
		rollouts.Go(func() { playDeploymentController(ctx, ns, stop) })

		for i := range manyIngesters {
			ing := minimalIngester(ns, fmt.Sprintf("ing-%03d", i))
			if err := k8sClient.Create(ctx, ing); err != nil {
				b.Fatal(err)
			}
		}
		deadline := time.Now().Add(10 * time.Minute)
		for ready := 0; ready < manyIngesters; {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d Ingesters Ready after 10 minutes", ready, manyIngesters)
			}
			time.Sleep(200 * time.Millisecond)
			var list spanflowv1alpha1.IngesterList
			if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
				b.Fatal(err)
			}
			ready = 0
			for i := range list.Items {
				if meta.IsStatusConditionTrue(list.Items[i].Status.Conditions, spanflowv1alpha1.ConditionReady) {
					ready++
				}
			}
		}
		elapsed := time.Since(start)
		close(stop)
		rollouts.Wait()

		var heapAfter runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&heapAfter)
		b.ReportMetric(float64(manyIngesters)/elapsed.Seconds(), "ingesters-ready/s")
		b.ReportMetric((reconcileCount(b)-reconcilesBefore)/elapsed.Seconds(), "reconciles/s")
		b.ReportMetric(float64(heapAfter.HeapInuse)/(1<<20), "heap-in-use-MB")
		b.ReportMetric((float64(heapAfter.HeapInuse)-float64(heapBefore.HeapInuse))/manyIngesters/1024, "heap-KB/ingester")

		// envtest has no namespace controller: delete the Ingesters so that they stop
		// being resynced.
		if err := k8sClient.DeleteAllOf(ctx, &spanflowv1alpha1.Ingester{}, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
	}
}

// playDeploymentController marks every Deployment in ns rolled out until stop is closed.
func playDeploymentController(ctx context.Context, ns string, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		var deps appsv1.DeploymentList
		if err := k8sClient.List(ctx, &deps, client.InNamespace(ns)); err != nil {
			continue
		}
		for i := range deps.Items {
			d := &deps.Items[i]
			n := ptr.Deref(d.Spec.Replicas, 1)
			if d.Status.ObservedGeneration == d.Generation && d.Status.ReadyReplicas == n {
				continue
			}
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
			_ = k8sClient.Status().Update(ctx, d)
		}
	}
}

func reconcileCount(b *testing.B) float64 {
	return counterSum(b, "controller_runtime_reconcile_total", "controller", "ingester")
}
