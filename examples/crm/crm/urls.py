from django.urls import path
from leads import api, views
from rest_framework_simplejwt.views import TokenObtainPairView

urlpatterns = [
    path("healthz", views.healthz),
    path("api/v1/leads/", views.leads),
    path("api/v1/leads/<int:pk>/", views.lead_detail),
    path("api/v1/leads/<int:pk>/score/", views.lead_score),
    path("api/v1/workflows/<int:pk>/execute/", views.execute_workflow),
    path("api/v1/search/", views.search),
    path("api/v1/slow/", views.slow),
    path("api/v1/leads/<int:pk>/sync/", views.sync),
    path("api/v1/leads/<int:pk>/sheet/", views.lead_sheet),
    path("api/v1/boom/", views.boom),
    path("api/v1/login/", views.login),
    path("api/v1/signin/", views.signin),
    path("api/v2/token/", TokenObtainPairView.as_view()),
    path("api/v2/leads/", api.OrgLeadsView.as_view()),
    path("api/v2/leads/export/", api.LeadsExportView.as_view()),
]
