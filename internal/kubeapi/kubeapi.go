// Package kubeapi makes REST clients for the few Kubernetes API groups meshdns reads and
// writes: core, discovery.k8s.io, authentication.k8s.io and coordination.k8s.io.
//
// client-go's typed clients decode with a scheme of every API group of Kubernetes; linking
// them (and the informers of every group that its leader election and dynamic informers bring)
// took a third of the binary and about 9 MiB of every process's resident memory, agents and
// sidecars included. A RESTClient with a scheme of these groups alone does what meshdns needs:
// list and watch through client-go's informers, create TokenReviews, hold a Lease.
package kubeapi

import (
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// The API groups a client can be made for.
var (
	Core           = corev1.SchemeGroupVersion
	Discovery      = discoveryv1.SchemeGroupVersion
	Authentication = authenticationv1.SchemeGroupVersion
	Coordination   = coordinationv1.SchemeGroupVersion
)

var codecs = func() serializer.CodecFactory {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme,
		authenticationv1.AddToScheme, coordinationv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err) // a type registered twice: a programming error
		}
	}
	return serializer.NewCodecFactory(scheme)
}()

// NewClient returns a REST client of the API group version gv (one of the above) using cfg.
func NewClient(cfg *rest.Config, gv schema.GroupVersion) (*rest.RESTClient, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	if gv.Group == "" {
		c.APIPath = "/api"
	}
	c.NegotiatedSerializer = codecs.WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientFor(c)
}
