from __future__ import annotations

from django.utils import timezone
from rest_framework.response import Response
from rest_framework.views import APIView


class HealthApi(APIView):
    def get(self, request):
        return Response({"status": "healthy", "services": {}, "timestamp": timezone.now().isoformat()})
